"""The JSON API beside the UI, named `search`, `verify` and `identify` (plain images in, an upload or a data:
URI; the CLI's `--json` output back), and `status` (is the product index ready)."""

from __future__ import annotations

import gradio as gr
from gradio.data_classes import FileData

from lookalike.app.manage_page import add_manage_api
from lookalike.app.services import Services
from lookalike.app.uploads import read_upload, user_errors
from model_zoo import DEFAULT_FACE_MODEL


def add_api(services: Services) -> None:
    """Register the endpoints on the Blocks being built."""

    def search(image: FileData, top_k: int = 30, scope: str = "category") -> dict:
        """The catalog items most like a photo (file upload or data: URI): the JSON of `lookalike search --json`
        (the first hits verified when the index has local features)."""
        with user_errors():
            photo = read_upload(image, "the query photo")
            with services.products.lease() as searcher:
                return searcher.search(photo, int(top_k), scope).summary()

    def verify(
        image1: FileData, image2: FileData, model: str = DEFAULT_FACE_MODEL, threshold: float = -1.0,
        any_face: bool = False,
    ) -> dict:
        """Whether two photos show the same person: the JSON of `lookalike verify --json`. A negative
        threshold means the model's calibrated one; any_face compares every face of both photos."""
        with user_errors():
            photos = [read_upload(image1, "the first photo"), read_upload(image2, "the second photo")]
            chosen = None if threshold < 0 else float(threshold)
            faces = "all" if any_face else "largest"
            return services.verifier(model).verify(*photos, threshold=chosen, faces=faces).to_dict()

    def identify(image: FileData, top_k: int = 5, threshold: float = -1.0) -> dict:
        """Who is in a photo, against the server's face gallery (`--faces-index`): the JSON of
        `lookalike identify --json`. A negative threshold means the gallery model's calibrated one."""
        with user_errors():
            if services.face_gallery is None:
                raise gr.Error("This server has no face gallery: start it with --faces-index FACE_INDEX.")
            photo = read_upload(image, "the photo")
            chosen = None if threshold < 0 else float(threshold)
            with services.face_gallery.gallery() as gallery:
                return gallery.identify(photo, int(top_k), chosen).to_dict()

    def status() -> dict:
        """Whether the product index is ready: `{"product_index": "ready" | "building" | "missing", "improving",
        "detail", "generation"}` (a client, a health check or a test waits for "ready" after a first start, or
        for a new generation after an update; `improving`: the demo's quick index is served while its default
        index builds)."""
        products = services.products
        state = "building" if products.building else "ready" if products.ready else "missing"
        return {"product_index": state, "improving": products.improving, "detail": products.status(),
                "generation": products.live.generation}

    gr.api(search, api_name="search")
    gr.api(verify, api_name="verify")
    gr.api(identify, api_name="identify")
    gr.api(status, api_name="status")
    add_manage_api(services)  # add_item, update_item, remove_item, catalog_status: admin only
