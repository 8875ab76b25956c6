"""lookalike's web app: product search and face verification in one Gradio Blocks page.

Run `python app.py` (add `--share` for a public link); on Hugging Face Spaces the same file runs as is.
Models and the product index load once at start-up and are warmed; each request only embeds its photo.
The app never writes uploaded photos anywhere; Gradio's copies are purged after LOOKALIKE_UPLOAD_TTL seconds.
A session keeps only the query embedding and keypoints (to re-rank when scope or top-k change) and the last
face distance (to re-judge when the threshold moves), never the photos.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.data_classes import FileData

from lookalike.faces.verify import FaceVerifier
from lookalike.images.loading import ImageError, load_image
from lookalike.paths import REPO_ROOT
from lookalike.presentation import draw_boxes, faces_note, hit_caption, hit_details, verdict_html, words_read
from lookalike.products.search import DEFAULT_RERANK, DEFAULT_SCOPE, SCOPES, ProductSearcher
from model_zoo import DEFAULT_FACE_MODEL, get_face_cfg, list_face_models

log = logging.getLogger("lookalike.app")
DEFAULT_INDEX = REPO_ROOT / "index"
EXAMPLES = REPO_ROOT / "assets" / "examples"
UPLOAD_SOURCES = ["upload", "webcam", "clipboard"]
#: Seconds an upload may stay in Gradio's cache before it is purged. Uploads are stored by content hash
#: and shared by every request that sends the same photo, so they are purged by age, never per request.
UPLOAD_TTL_S = int(os.environ.get("LOOKALIKE_UPLOAD_TTL", 120))


# ---------------------------------------------------------------- uploads: read once, then delete
def _read_upload(payload: Any, what: str):
    """The image a user sent, decoded by our own loader so bad files get our specific messages, which
    name the photo as the user knows it (`what`), never the server's temporary copy."""
    if isinstance(payload, dict) and "background" in payload:  # image editor: the cropped composite wins
        payload = payload.get("composite") or payload.get("background")
    if not payload:
        raise gr.Error(f"Add {what} first (upload, webcam or paste).")
    if isinstance(payload, str):  # the JSON API: a data: URI, or the path of a file uploaded to this server
        payload = {"url": payload} if payload.startswith("data:") else {"path": payload}
    url = str(payload.get("url") or "")
    if not payload.get("path") and url.startswith("data:"):
        try:
            data = base64.b64decode(url.split(",", 1)[1], validate=True)
        except (IndexError, ValueError):
            raise ImageError(f"{what} is not valid base64 data") from None
        return load_image(data, name=what)
    path = Path(str(payload.get("path") or ""))
    if not _is_upload(path):
        raise ImageError(f"{what} must be uploaded to this server first (or sent as a data: URI)")
    if not path.exists():
        raise gr.Error(f"{what.capitalize()} was purged (uploads are kept {UPLOAD_TTL_S} s): add it again.")
    return load_image(path, name=what)


def _is_upload(path: Path) -> bool:
    """Only files in Gradio's upload cache are read: a client must not make the server open its own files."""
    root = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()
    return path.resolve().is_relative_to(root)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Show a specific message for anything the user can fix; never a stack trace."""
    try:
        yield
    except gr.Error:
        raise
    except (ImageError, ValueError, FileNotFoundError) as exc:
        raise gr.Error(str(exc)) from None
    except Exception as exc:
        log.exception("request failed")
        raise gr.Error(f"Internal error ({type(exc).__name__}); the app is still running, please try again.") from None


# ---------------------------------------------------------------- services loaded once at start-up
@dataclass
class Services:
    searcher: ProductSearcher | None
    index_problem: str
    face_models: list[str]
    _verifiers: dict[str, FaceVerifier] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def verifier(self, name: str) -> FaceVerifier:
        with self._lock:
            if name not in self._verifiers:
                self._verifiers[name] = FaceVerifier(model=name)
            return self._verifiers[name]


def _load_product_index(index_dir: Path, catalog: str | None) -> tuple[ProductSearcher | None, str]:
    from lookalike.products.build import build_index, index_exists

    if not index_exists(index_dir) and catalog:
        log.info("no index at %s: building it from %s", index_dir, catalog)
        build_index(Path(catalog), index_dir)
    try:
        return ProductSearcher.load(index_dir), ""
    except (FileNotFoundError, ValueError) as exc:
        hint = (
            f"No product index ({exc}). Build one with `python index_builder.py CATALOG_DIR --out {index_dir}`, "
            "or start the app with LOOKALIKE_CATALOG=CATALOG_DIR to build it now."
        )
        return None, hint


def _import_gradio_lazies() -> None:
    """Gradio imports matplotlib and resolves its backend inside the first request it serves (0.7-1 s
    here, which the first user waited for): do it at start-up instead."""
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.get_backend()


def load_services(index_dir: Path, catalog: str | None, warm_up: bool = True) -> Services:
    """Product index and default face model, loaded (and warmed) before the server starts any thread:
    the face helpers are then forked with the loaded model instead of importing and loading their own."""
    start = time.perf_counter()
    searcher, problem = _load_product_index(index_dir, catalog)
    services = Services(searcher, problem, list_face_models(available_only=True))
    product_loaded = time.perf_counter()
    verifier = services.verifier(DEFAULT_FACE_MODEL)
    face_loaded = time.perf_counter()
    if warm_up:
        _import_gradio_lazies()
        if searcher is not None:
            searcher.search(np.full((224, 224, 3), 200, dtype=np.uint8), top_k=1)
        verifier.warm_up()
    log.info(
        "loaded in %.1f s: product index %.1f s, face model and helpers %.1f s, warm-up %.1f s",
        time.perf_counter() - start, product_loaded - start, face_loaded - product_loaded,
        time.perf_counter() - face_loaded,
    )
    return services


# ---------------------------------------------------------------- product tab
def _gallery(result) -> list[tuple[str, str]]:
    """Thumbnails made at build time: a few KB per item to send, nothing to re-encode per request."""
    return [
        (hit.thumbnail or hit.path, hit_caption(hit.category, hit.similarity, hit.title, hit.price, hit.inliers))
        for hit in result.results
    ]


def make_search(services: Services) -> Callable:
    def search(query: Any, scope: str, top_k: float, verify_hits: bool, request: gr.Request | None = None):
        """Search the catalog for the items most like the query photo (optionally cropped)."""
        with _user_errors():
            if services.searcher is None:
                raise gr.Error(services.index_problem)
            photo = _read_upload(query, "the query photo")
            verify = bool(verify_hits) and services.searcher.local is not None
            query_state = services.searcher.embed_query(photo, verify)
        return rerank(query_state, scope, top_k)

    def rerank(query_state: tuple | None, scope: str, top_k: float):
        """Re-run the search from the session's stored embedding (and keypoints): no photo needed."""
        if query_state is None or services.searcher is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), query_state
        with _user_errors():
            result = services.searcher.search_vector(query_state[0], int(top_k), scope, query_state[1])
        labels = {label: prob for label, prob in result.categories}
        details = [hit.to_dict() for hit in result.results]
        read = "" if result.words is None else f" {words_read(result.words)}."
        return labels, _gallery(result), "Select an item to see its details." + read, details, query_state

    return search, rerank


def show_details(details: list[dict] | None, evt: gr.SelectData) -> str:
    if not details or evt.index is None or evt.index >= len(details):
        return ""
    return hit_details(details[evt.index])


# ---------------------------------------------------------------- face tab
def make_verify(services: Services) -> Callable:
    def verify(image1: Any, image2: Any, model: str, threshold: float):
        """Tell whether two photos show the same person; returns verdict, distance and face crops."""
        with _user_errors():
            photos = [_read_upload(image1, "the first photo"), _read_upload(image2, "the second photo")]
            result = services.verifier(model).verify(*photos, threshold=float(threshold))
        boxed = [
            draw_boxes(photo, face.all_boxes, face.index) for photo, face in zip(photos, result.faces, strict=False)
        ]
        crops = [(face.aligned, f"photo {i + 1}") for i, face in enumerate(result.faces)]
        note = faces_note([f.count for f in result.faces], [f.index for f in result.faces])
        if note:
            gr.Warning(note)
        summary = {"distance": result.distance, "metric": services.verifier(model).metric}
        return (
            verdict_html(result.distance, result.threshold, summary["metric"]),
            boxed[0],
            boxed[1],
            crops,
            note,
            summary,
        )

    return verify


def rejudge(summary: dict | None, threshold: float) -> str:
    """Moving the slider re-judges the last pair without recomputing anything."""
    if not summary:
        return gr.skip()
    return verdict_html(summary["distance"], float(threshold), summary["metric"])


def make_api(services: Services) -> tuple[Callable, Callable]:
    """The JSON API beside the UI: plain images in, the CLI's `--json` output back."""

    def search(image: FileData, top_k: int = 30, scope: str = "category") -> dict:
        """The catalog items most like a photo (file upload or data: URI): the JSON of `lookalike search --json`
        (the first hits verified when the index has local features)."""
        with _user_errors():
            if services.searcher is None:
                raise gr.Error(services.index_problem)
            photo = _read_upload(image, "the query photo")
            return services.searcher.search(photo, int(top_k), scope).summary()

    def verify(
        image1: FileData, image2: FileData, model: str = DEFAULT_FACE_MODEL, threshold: float = -1.0,
        any_face: bool = False,
    ) -> dict:
        """Whether two photos show the same person: the JSON of `lookalike verify --json`. A negative
        threshold means the model's calibrated one; any_face compares every face of both photos."""
        with _user_errors():
            photos = [_read_upload(image1, "the first photo"), _read_upload(image2, "the second photo")]
            chosen = None if threshold < 0 else float(threshold)
            faces = "all" if any_face else "largest"
            return services.verifier(model).verify(*photos, threshold=chosen, faces=faces).to_dict()

    return search, verify


def threshold_slider(model: str) -> dict:
    cfg = get_face_cfg(model)
    return gr.update(
        minimum=0.0, maximum=cfg.distance_max, value=cfg.threshold, step=cfg.distance_max / 200
    )


# ---------------------------------------------------------------- layout
def _product_examples(services: Services, count: int = 6) -> list[str]:
    return services.searcher.example_paths(count) if services.searcher else []


def build_demo(services: Services) -> gr.Blocks:
    search, rerank = make_search(services)
    verify = make_verify(services)
    face_cfg = get_face_cfg(DEFAULT_FACE_MODEL)
    with gr.Blocks(title="lookalike", delete_cache=(max(1, UPLOAD_TTL_S // 2), UPLOAD_TTL_S)) as demo:
        gr.Markdown("# lookalike\nFind products that look like a photo; check whether two photos show the same person.")
        with gr.Tab("Product search"):
            if services.searcher is None:
                gr.Markdown(f"**{services.index_problem}**")
            with gr.Row():
                with gr.Column(scale=1):
                    query = gr.ImageEditor(
                        label="Query photo (crop to the item you want)",
                        sources=UPLOAD_SOURCES,
                        transforms=("crop",),
                        brush=False,
                        eraser=False,
                        layers=False,
                        elem_id="query",
                    )
                    with gr.Row():
                        scope = gr.Radio(list(SCOPES), value=DEFAULT_SCOPE, label="Search scope")
                        top_k = gr.Slider(1, 100, value=30, step=1, label="Results")
                    verify_hits = gr.Checkbox(
                        value=DEFAULT_RERANK, label="Verify the first hits (matching keypoints lift the same product)",
                        visible=services.searcher is not None and services.searcher.local is not None,
                    )
                    search_btn = gr.Button("Search", variant="primary", elem_id="search-btn")
                    categories = gr.Label(num_top_classes=5, label="Predicted category")
                with gr.Column(scale=2):
                    gallery = gr.Gallery(
                        label="Most similar catalog items", columns=6, height="auto", elem_id="results"
                    )
                    details_md = gr.Markdown()
            examples = _product_examples(services)
            if examples:
                gr.Examples([[{"background": p, "layers": [], "composite": p}] for p in examples], [query])
            query_state = gr.State(None)  # the query's vector and keypoints, never the photo
            details = gr.State([])
            outputs = [categories, gallery, details_md, details, query_state]
            search_btn.click(
                search, [query, scope, top_k, verify_hits], outputs, preprocess=False, api_name="search_ui",
                api_visibility="private",
            )
            for control in (scope, top_k):
                control.change(rerank, [query_state, scope, top_k], outputs, api_visibility="private")
            gallery.select(show_details, [details], details_md, api_visibility="private")

        with gr.Tab("Face verification"):
            with gr.Row():
                image1 = gr.Image(label="Photo 1", sources=UPLOAD_SOURCES, elem_id="face1")
                image2 = gr.Image(label="Photo 2", sources=UPLOAD_SOURCES, elem_id="face2")
            with gr.Row():
                model = gr.Dropdown(services.face_models, value=DEFAULT_FACE_MODEL, label="Face model")
                threshold = gr.Slider(
                    0.0,
                    face_cfg.distance_max,
                    value=face_cfg.threshold,
                    step=face_cfg.distance_max / 200,
                    label="Threshold (same person when distance ≤ threshold)",
                )
            verify_btn = gr.Button("Verify", variant="primary", elem_id="verify-btn")
            verdict = gr.HTML(elem_id="verdict")
            note = gr.Markdown()
            with gr.Row():
                boxed1 = gr.Image(label="Faces found in photo 1", interactive=False)
                boxed2 = gr.Image(label="Faces found in photo 2", interactive=False)
                crops = gr.Gallery(label="Aligned faces compared", columns=2, height=220)
            gr.Examples([[str(EXAMPLES / "astronaut.jpg"), str(EXAMPLES / "astronaut_variant.jpg")]], [image1, image2])
            summary = gr.State(None)
            verify_btn.click(
                verify,
                [image1, image2, model, threshold],
                [verdict, boxed1, boxed2, crops, note, summary],
                preprocess=False,
                api_name="verify_ui",
                api_visibility="private",
            )
            model.change(threshold_slider, model, threshold, api_visibility="private")
            threshold.release(rejudge, [summary, threshold], verdict, api_visibility="private")
        api_search, api_verify = make_api(services)
        gr.api(api_search, api_name="search")
        gr.api(api_verify, api_name="verify")
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path(os.environ.get("LOOKALIKE_INDEX", DEFAULT_INDEX)))
    parser.add_argument("--catalog", default=os.environ.get("LOOKALIKE_CATALOG"),
                        help="catalog folder to index at start-up when the index is missing")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--auth", help="USER:PASS required to open the app")
    parser.add_argument("--max-file-size", default="10mb", help="largest upload accepted, e.g. 10mb")
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("LOOKALIKE_CONCURRENCY", 2)),
                        help="requests processed at once (LOOKALIKE_CONCURRENCY)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    services = load_services(args.index, args.catalog)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    demo = build_demo(services)
    demo.queue(default_concurrency_limit=args.concurrency).launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        auth=auth,
        max_file_size=args.max_file_size,
        allowed_paths=[*services.searcher.catalog_roots(), str(services.searcher.index.folder)]
        if services.searcher
        else [],
        show_error=True,
    )


if __name__ == "__main__":
    main()
