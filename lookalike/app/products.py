"""The product tab's handlers: search from a photo, search again from the session's stored query vector
when scope or top-k change, show one hit as a shop item with why it matched, and follow a first-start build's
progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from lookalike.app.services import Services
from lookalike.app.uploads import read_upload, toast_errors
from lookalike.presentation import NOT_IN_CATALOG, hit_caption, hit_details, match_note, words_read
from lookalike.products.results import SearchResult

#: What the search handlers fill: categories, gallery, details line, hits' details, stored query, and the line
#: above the gallery saying the catalog has nothing like the query.
SEARCH_OUTPUTS = 6
CATEGORY_LABEL = "Predicted category"


def _gallery(result: SearchResult) -> list[tuple[str, str]]:
    """Thumbnails made at build time: a few KB per item to send, nothing to re-encode per request."""
    return [
        (hit.thumbnail or hit.path, hit_caption(hit.category, hit.similarity, hit.title, hit.price, hit.inliers))
        for hit in result.results
    ]


def make_search(services: Services) -> tuple[Callable, Callable]:
    """The Search button's handler, and the one that searches again without the photo."""

    @toast_errors(SEARCH_OUTPUTS)
    def search(query: Any, scope: str, top_k: float, verify_hits: bool):
        """Search the catalog for the items most like the query photo (optionally cropped)."""
        photo = read_upload(query, "the query photo")
        with services.products.lease() as searcher:
            query_state = searcher.embed_query(photo, bool(verify_hits) and searcher.part("local_features") is not None)
            return _results(searcher.search_vector(query_state[0], int(top_k), scope, query_state[1]), query_state)

    @toast_errors(SEARCH_OUTPUTS)
    def search_again(query_state: tuple | None, scope: str, top_k: float):
        """Run the search again from the session's stored embedding (and keypoints), with the current
        scope and top-k: no photo needed, nothing embedded again."""
        if query_state is None:
            return tuple(gr.skip() for _ in range(SEARCH_OUTPUTS))
        with services.products.lease() as searcher:
            return _results(searcher.search_vector(query_state[0], int(top_k), scope, query_state[1]), query_state)

    return search, search_again


def _results(result: SearchResult, query_state: tuple):
    labels = {label: prob for label, prob in result.categories}
    read = "" if result.words is None else f" {words_read(result.words)}."
    # what a shopper may see (no server paths), and the item id to explain a match with
    details = [{**summary, "id": hit.id} for summary, hit in zip(result.summary()["results"], result.results,
                                                                strict=True)]
    unknown = result.in_catalog is False  # None: an index built without the decision
    categories = gr.Label(labels, label=f"{CATEGORY_LABEL}: not confident, nothing like this in the catalog"
                          if unknown else CATEGORY_LABEL)
    note = f"**{NOT_IN_CATALOG}.**" if unknown else ""
    return categories, _gallery(result), "Select an item to see its details." + read, details, query_state, note


def make_explain(services: Services) -> Callable:
    """The gallery's select handler: the chosen hit as a shop item and, for a verified hit or one whose words
    voted, why it matched: the query and the catalog photo side by side, matched keypoints drawn."""

    @toast_errors(2)
    def show_details(details: list[dict] | None, query: Any, query_state: tuple | None, evt: gr.SelectData):
        if not details or evt.index is None or evt.index >= len(details):
            return "", gr.Image(visible=False)
        hit = details[evt.index]
        text = hit_details(hit)
        if not (hit.get("inliers") or hit.get("shared_words")) or query_state is None:
            return text, gr.Image(visible=False)
        photo = read_upload(query, "the query photo")
        vector, cues = query_state
        with services.products.lease() as searcher:
            explanation = searcher.explain(photo, int(hit["id"]), cues, vector)
            picture = explanation.picture(photo, searcher.catalog_photo(int(hit["id"])))
        return text + match_note(explanation.inliers, explanation.shared_words), gr.Image(picture, visible=True)

    return show_details


def index_status(services: Services) -> tuple[str, Any, Any]:
    """The tab's status line while an index is built (or a better one, behind the demo's quick index); once
    no build runs, the timer stops and the keypoint option shows when the index can verify hits."""
    if services.products.building or services.products.improving:
        return services.products.status(), gr.skip(), gr.skip()
    return services.products.status(), gr.Timer(active=False), gr.Checkbox(visible=services.products.can_verify())


def product_examples(services: Services, count: int = 8) -> list[str]:
    return services.products.example_paths(count)
