"""Search a product index with a photo: embed -> rank categories -> Annoy candidates -> exact re-rank.

Similarity. Vectors are unit length, so Annoy's angular distance d is their Euclidean distance,
d = sqrt(2 - 2 cos). Each hit reports that `distance` and `similarity = 1 - d^2 / 4 = (1 + cos) / 2`,
the cosine mapped linearly from [-1, 1] onto [0, 1] (1: same direction, 0.5: unrelated, 0: opposite).

Categories. The index's head gives probabilities, blended with a vote of the query's nearest catalog
photos (`NeighbourVote`, settings in the index manifest; an index without them uses the head alone).

Scope. "category" searches only the category ranked first (one Annoy index per category),
"all" the whole catalog. Annoy proposes `max(OVERFETCH * top_k, MIN_CANDIDATES)` candidates, inspecting
`search_k_per_candidate` nodes per candidate (measured at build time, `lookalike.products.ann_tuning`); they are
re-scored exactly against the stored vectors, so ANN error can only drop items, never misorder them.

A searcher is loaded once and is safe to query from several threads: the index is read-only after
loading (Annoy's Python queries are thread-safe, spotify/annoy#260), and the model runs under
`torch.inference_mode` in eval mode.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lookalike.images.loading import ImageSource, load_image
from lookalike.products.heads import NeighbourVote, ranking
from lookalike.products.index import LoadedIndex, load_index
from lookalike.products.neighbours import annoy_top_k, nearest

if TYPE_CHECKING:  # the model zoo (and torch) load when a searcher is loaded
    from model_zoo.product_embedders import ProductEmbedder

SCOPES = ("category", "all")
DEFAULT_SCOPE = "category"
OVERFETCH = 4
MIN_CANDIDATES = 100
CATEGORIES_SHOWN = 5
SUMMARY_HIT_KEYS = ("rank", "path", "category", "product_id", "title", "price", "url", "similarity", "distance")


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
    similarity: float
    distance: float
    thumbnail: str = ""  # a small copy made at build time (the photo itself for older indexes)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SearchResult:
    model: str
    scope: str
    categories: list[tuple[str, float]]
    results: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        """What `lookalike search --json` and the app's `search` API return: the ranking and, per hit,
        what a shop page shows."""
        return {
            "model": self.model,
            "scope": self.scope,
            "categories": [{"label": label, "prob": prob} for label, prob in self.categories],
            "results": [{key: getattr(hit, key) for key in SUMMARY_HIT_KEYS} for hit in self.results],
            "timings_ms": self.timings_ms,
        }

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "scope": self.scope,
            "categories": [{"label": label, "prob": prob} for label, prob in self.categories],
            "results": [hit.to_dict() for hit in self.results],
            "timings_ms": self.timings_ms,
        }


def candidate_count(top_k: int) -> int:
    """How many candidates Annoy proposes for a top_k search (re-ranked exactly afterwards)."""
    return max(OVERFETCH * top_k, MIN_CANDIDATES)


def _ms(start: float) -> float:
    return round(1000.0 * (time.perf_counter() - start), 2)


class ProductSearcher:
    """An index and its embedder, loaded once and safe to query from several threads.

    Example:
        >>> searcher = ProductSearcher.load("index")
        >>> result = searcher.search("shoe.jpg", top_k=30, scope="all")
        >>> [(hit.category, hit.similarity) for hit in result.results[:3]]
    """

    def __init__(self, index: LoadedIndex, embedder: ProductEmbedder) -> None:
        self.index, self.embedder = index, embedder
        self._labels = np.asarray([row["category"] for row in index.rows])
        self._number = {category: i for i, category in enumerate(index.categories)}
        self.vote = NeighbourVote(**index.manifest.get("neighbour_vote", {"weight": 0.0}))
        self._head_class = {category: i for i, category in enumerate(index.head.classes)}  # probs columns

    @classmethod
    def load(cls, index_dir: str | Path, embedder: ProductEmbedder | None = None) -> ProductSearcher:
        """Load an index and the embedder it was built with.

        Raises:
            IndexMissingError: no index at `index_dir`.
            IndexCorruptError: a file of the index is damaged or missing (the message names it).
            WeightsUnavailableError: the embedder's weights cannot be loaded here.
        """
        from model_zoo.product_embedders import create_embedder

        index = load_index(Path(index_dir))
        return cls(index, embedder or create_embedder(**index.manifest["embedder"]))

    @property
    def model(self) -> str:
        return self.index.manifest["model"]

    def embed(self, image: ImageSource) -> np.ndarray:
        """The query's unit vector [dim]; keep it to re-run `search_vector` without the photo."""
        return self.embedder.embed([load_image(image)])[0]

    def _scope_ids(self, scope: str, category: str) -> tuple[int | None, np.ndarray | None]:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        if scope == "all":
            return None, None
        return self._number[category], np.flatnonzero(self._labels == category)

    def exact_ids(self, vector: np.ndarray, top_k: int, scope: str, category: str) -> list[int]:
        """Brute-force top-k ids in the scope (the reference the ANN recall is measured against)."""
        _, ids = self._scope_ids(scope, category)
        ids = np.arange(len(self._labels)) if ids is None else ids
        _, top = nearest(self.index.vectors[ids], vector, top_k)
        return [int(i) for i in ids[top[0]]]

    def _nearest(self, vector: np.ndarray, top_k: int, number: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, cosines) of the top_k items in Annoy index `number`: over-fetched candidates, exact re-rank."""
        wanted = candidate_count(top_k)
        effort = self.index.manifest.get("search_k_per_candidate", self.index.manifest["trees"])
        return annoy_top_k(self.index.annoy[number], self.index.vectors, vector, top_k, wanted, wanted * effort)

    def categorize(self, vector: np.ndarray) -> list[tuple[str, float]]:
        """Every category, likeliest first, with its probability (head blended with the neighbour vote)."""
        probs = self.index.head.predict_proba(vector)
        if self.vote.weight > 0:
            ids, cosine = self._nearest(vector, self.vote.k, None)
            labels = np.asarray([self._head_class[self._labels[i]] for i in ids])
            probs = self.vote.blend(probs, cosine[None, :], labels[None, :])
        return ranking(self.index.head.classes, probs[0])

    def search_vector(self, vector: np.ndarray, top_k: int = 30, scope: str = DEFAULT_SCOPE) -> SearchResult:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        timings: dict[str, float] = {}
        start = time.perf_counter()
        ranking = self.categorize(vector)
        timings["categorize"] = _ms(start)
        number, _ = self._scope_ids(scope, ranking[0][0])
        start = time.perf_counter()
        ids, cosine = self._nearest(vector, top_k, number)
        hits = [self._hit(rank, int(i), float(c)) for rank, (i, c) in enumerate(zip(ids, cosine, strict=True), 1)]
        timings["search"] = _ms(start)
        return SearchResult(self.model, scope, ranking[:CATEGORIES_SHOWN], hits, timings)

    def _hit(self, rank: int, item_id: int, cosine: float) -> Hit:
        row = self.index.rows[item_id]
        cosine = min(max(cosine, -1.0), 1.0)
        return Hit(
            rank=rank,
            id=item_id,
            path=row["path"],
            category=row["category"],
            product_id=row["product_id"] or "",
            title=row["title"] or "",
            price=row["price"] or "",
            url=row["url"] or "",
            similarity=round((1.0 + cosine) / 2.0, 6),
            distance=round(float(np.sqrt(max(0.0, 2.0 - 2.0 * cosine))), 6),
            thumbnail=self.index.thumbnail(item_id),
        )

    def search(self, image: ImageSource, top_k: int = 30, scope: str = DEFAULT_SCOPE) -> SearchResult:
        """The top_k catalog items most like `image`, most similar first (see `search` for the arguments)."""
        start = time.perf_counter()
        vector = self.embed(image)
        embed_ms = _ms(start)
        result = self.search_vector(vector, top_k, scope)
        result.timings_ms = {"embed": embed_ms, **result.timings_ms, "total": _ms(start)}
        return result

    def example_paths(self, count: int) -> list[str]:
        """One photo from each of the first `count` categories: example queries for a demo."""
        first: dict[str, str] = {}
        for row in self.index.rows:
            first.setdefault(row["category"], row["path"])
        return [first[category] for category in sorted(first)[:count]]

    def catalog_roots(self) -> list[str]:
        """The folders holding the catalog photos (what a web app may serve)."""
        return sorted({str(Path(row["path"]).parent) for row in self.index.rows})


_SEARCHERS: dict[Path, ProductSearcher] = {}
_SEARCHERS_LOCK = threading.Lock()


def search(
    photo: ImageSource, index: str | Path = "index", top_k: int = 30, scope: str = DEFAULT_SCOPE
) -> SearchResult:
    """The catalog items that look most like `photo`, in one call.

    The index (built by `lookalike build` / `index_builder.py` / `build_index`) and the embedder it
    was built with are loaded on first use and kept for later calls in this process; a server keeps
    its own `ProductSearcher.load(index)` instead.

    Args:
        photo: a path, PIL image, numpy array or bytes; any mode, EXIF rotation applied.
        index: the index folder.
        top_k: how many items to return, most similar first.
        scope: "category" searches the predicted category only; "all" the whole catalog.

    Returns:
        A `SearchResult`: the category ranking (label, probability), the hits (path, category,
        product id, title, price, url, similarity in [0, 1], distance) and per-stage timings.

    Raises:
        ImageError: the photo cannot be read (not an image, truncated, too large).
        IndexMissingError, IndexCorruptError: no index at `index`, or a damaged one.
        WeightsUnavailableError: the index's embedder cannot be loaded here.
        ValueError: top_k below 1 or an unknown scope.

    Example:
        >>> import lookalike
        >>> result = lookalike.search("red_dress.jpg", index="index", top_k=5)
        >>> result.categories[0][0], [hit.path for hit in result.results][:2]
        ('dress', ['catalog/dress/a.jpg', 'catalog/dress/b.jpg'])
    """
    key = Path(index).resolve()
    with _SEARCHERS_LOCK:
        if key not in _SEARCHERS:
            _SEARCHERS[key] = ProductSearcher.load(key)
        searcher = _SEARCHERS[key]
    return searcher.search(photo, top_k, scope)
