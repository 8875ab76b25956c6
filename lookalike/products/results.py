"""What a product search returns (`SearchResult`, its `Hit`s) and what a query photo brings to it beside its
vector (`QueryCues`): plain data, so a server can keep a query's cues between searches and send results as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: What a client sees of a hit (`lookalike search --json`, the app's API): a shop item's fields, its scores, and
#: its `photo`: the path relative to the catalog (`catalog_path`), never a path on the server. Not named "path":
#: gradio_client takes any {"path": ...} in a result for a file to download.
SUMMARY_HIT_KEYS = (
    "rank", "photo", "category", "product_id", "title", "price", "url", "similarity", "cosine", "distance", "inliers",
    "shared_words"
)


class QueryCues(dict[str, Any]):
    """What a query photo offers beside its vector, by part name (`lookalike.products.parts`): the head's second
    view's vector, its keypoints and the inliers found so far, the words printed on it. Each part extracts its
    own when the index has that part and the query wants it; a caller keeps them to search again without the
    photo (an evaluation, the app's "verify hits" toggle)."""


@dataclass
class Hit:
    rank: int
    id: int
    path: str
    category: str
    product_id: str
    title: str
    price: str
    url: str
    similarity: float  # the share of catalog pairs this close that share the category (`calibration`)
    distance: float
    cosine: float = 0.0
    catalog_path: str = ""  # `path` relative to the catalog: what a client is shown
    thumbnail: str = ""  # a small copy made at build time (the photo itself for older indexes)
    inliers: int | None = None  # keypoint matches one homography explains; None when not verified
    shared_words: list[str] | None = None  # voting words on the query and this photo; None: the query was not read

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SearchResult:
    model: str
    scope: str
    categories: list[tuple[str, float]]
    results: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)
    words: list[str] | None = None  # read on the query photo, for the category; None when it was not read
    # whether the query shows something of the catalog's kind, and the score it was decided on (`parts.open_set`);
    # None: an index built without the decision
    in_catalog: bool | None = None
    in_catalog_score: float | None = None

    def summary(self) -> dict:
        """What `lookalike search --json` and the app's `search` API return: the ranking and, per hit,
        what a shop page shows."""
        return {
            "model": self.model,
            "scope": self.scope,
            "categories": [{"label": label, "prob": prob} for label, prob in self.categories],
            "results": [
                {key: hit.catalog_path if key == "photo" else getattr(hit, key) for key in SUMMARY_HIT_KEYS}
                for hit in self.results
            ],
            "timings_ms": self.timings_ms,
            "words": self.words,
            "in_catalog": self.in_catalog,
            "in_catalog_score": self.in_catalog_score,
        }

    def to_dict(self) -> dict:
        """The summary with every field of each hit (its id and thumbnail too)."""
        return {**self.summary(), "results": [hit.to_dict() for hit in self.results]}
