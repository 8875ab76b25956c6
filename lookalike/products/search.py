"""Search a product index with a photo: embed -> rank categories -> nearest items from the vector store, with
each of the index's parts (`lookalike.products.parts`) adding its cue, its vote, its re-ranking and its notes.

Similarity. Vectors are unit length, so Annoy's angular distance d is their Euclidean distance,
d = sqrt(2 - 2 cos). Each hit reports that `distance`, its `cosine`, and a `similarity` a person can read
(the "similarity" part's calibration; the cosine moved onto [0, 1] for an index without it).

Categories. The index's head gives probabilities from the query's vector (and what parts add to its input, the
second view), then each voting part in turn blends in its vote: the nearest catalog photos, the verified ones
(keypoints), the printed words. One store query serves every vote (`Part.pool`).

Scope. "category" searches only the category ranked first, "all" the whole catalog, "blend" the whole
catalog's nearest items re-ordered by similarity x their category's probability. The store returns exact
cosines (Annoy's over-fetched candidates are re-scored against the stored vectors, so ANN error can only drop
items, never misorder them). Hit metadata is read from the catalog's SQLite.

A searcher is loaded once and is safe to query from several threads: the index is read-only after loading, and
the models run in inference mode. It keeps reading the folder it loaded after a build swapped in a new one;
`lookalike.products.live` follows the folder and serves each new index as it appears.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from lookalike.images.loading import ImageError, ImageSource, load_image
from lookalike.products import parts as registry
from lookalike.products.calibration import linear_similarity
from lookalike.products.explain import Explanation
from lookalike.products.heads import head_input, ranking
from lookalike.products.index import LoadedIndex, load_index
from lookalike.products.query_photos import calibration, embed_with_keypoints
from lookalike.products.results import Hit, QueryCues, SearchResult
from lookalike.vectors.neighbours import nearest
from lookalike.vectors.stores import Found

if TYPE_CHECKING:  # the model zoo (and torch) load when a searcher is loaded
    from model_zoo.product_embedders import ProductEmbedder

SCOPES = ("category", "all", "blend")
BLEND_POOL = 4  # blend re-scores the whole catalog's top BLEND_POOL x top_k (at least MIN_POOL) by cosine
MIN_POOL = 100
DEFAULT_SCOPE = "category"
CATEGORIES_SHOWN = 5


def _ms(start: float) -> float:
    return round(1000.0 * (time.perf_counter() - start), 2)


class ProductSearcher:
    """An index's core, its opened parts and its embedder, loaded once and safe to query from several threads.

    Example:
        >>> searcher = ProductSearcher.load("index")
        >>> result = searcher.search("shoe.jpg", top_k=30, scope="all")
        >>> [(hit.category, hit.similarity) for hit in result.results[:3]]
    """

    def __init__(self, index: LoadedIndex, embedder: ProductEmbedder, current: ProductSearcher | None = None) -> None:
        """Opens every part the index has; `current`: the searcher this one replaces, whose parts' models are
        reused where the new index names the same ones."""
        self.index, self.embedder, self._queries = index, embedder, embedder.for_queries(calibration(index))
        self.parts: dict[str, registry.Part] = {}
        try:
            for kind in registry.PARTS:
                entry = kind.entry(index.manifest)
                if entry is not None:
                    self.parts[kind.name] = kind.open(index, entry, current.parts.get(kind.name) if current else None)
        except BaseException:
            self.close()
            raise
        self._head_class = {category: i for i, category in enumerate(index.head.classes)}  # probs columns
        self._exact: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # eval's reference, on demand
        folders = index.rows.folders()
        self._catalog_root = Path(os.path.commonpath(folders)) if folders else None  # hits' paths relative to it

    @classmethod
    def load(cls, index_dir: str | Path, embedder: ProductEmbedder | None = None) -> ProductSearcher:
        """Load an index, its parts and the embedder it was built with.

        Raises:
            IndexMissingError: no index at `index_dir`.
            IndexCorruptError: a file of the index is damaged or missing (the message names it).
            WeightsUnavailableError: the embedders' weights cannot be loaded here.
        """
        from model_zoo.product_embedders import create_embedder

        index = load_index(Path(index_dir))
        try:
            return cls(index, embedder or create_embedder(**index.manifest.embedder_config(index.folder)))
        except BaseException:
            index.close()
            raise

    def close(self) -> None:
        """Release the index's files (a server that reloads an updated index closes the replaced searcher)."""
        for part in [*self.parts.values(), self.index]:
            part.close()

    model = property(lambda self: self.index.manifest.model)

    def part(self, name: str) -> registry.Part | None:
        """The index's part `name` (`Part.name`), None when it was built without it."""
        return self.parts.get(name)

    def wants(self, ask: str, value: bool | None) -> bool:
        """Whether a query's `ask` ("rerank", "read_text") is on: `value` (None: the part's default) on an index
        with the part that serves it; asking for it on an index without that part is a ValueError."""
        kind = next(kind for kind in registry.PARTS if kind.ask == ask)
        if value and kind.name not in self.parts:
            raise ValueError(kind.unavailable)
        return kind.name in self.parts and (kind.ask_default if value is None else value)

    def _query(self, vector: np.ndarray, photo: Image.Image | None, cues: QueryCues | None, **asks) -> registry.Query:
        for kind in registry.PARTS:
            if kind.ask and asks.get(kind.ask) and kind.name not in self.parts:
                raise ValueError(kind.unavailable)
        query = registry.Query(vector, photo, QueryCues(cues or {}), asks)
        for part in self.parts.values():
            part.cue(query)
        return query

    def _scope(self, scope: str, category: str) -> str | None:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        return category if scope == "category" else None

    def _rank(self, query: registry.Query) -> list[tuple[str, float]]:
        views = [view for part in self.parts.values() if (view := part.head_input(query)) is not None]
        probs = self.index.head.predict_proba(head_input(query.vector, views))[0]
        pool = max((part.pool(query) for part in self.parts.values()), default=0)
        if pool:
            query.neighbours = self.index.store.search(query.vector, pool, None)
            query.neighbour_classes = np.asarray([self._head_class[c] for c in query.neighbours.categories], np.int64)
        for part in self.parts.values():
            probs = part.vote(probs, query)
        return ranking(self.index.head.classes, probs)

    def categorize(self, vector: np.ndarray, cues: QueryCues | None = None) -> list[tuple[str, float]]:
        """Every category, likeliest first, with its probability, given the query's `cues` (`query_cues`)."""
        return self._rank(self._query(vector, None, cues))

    def search_vector(
        self, vector: np.ndarray, top_k: int = 30, scope: str = DEFAULT_SCOPE, cues: QueryCues | None = None
    ) -> SearchResult:
        """`search` from the query's vector and its `cues` (`query_cues`), without the photo."""
        return self._search(self._query(vector, None, cues), top_k, scope)

    def _search(self, query: registry.Query, top_k: int, scope: str) -> SearchResult:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        start = time.perf_counter()
        ranked = self._rank(query)
        timings = {"categorize": _ms(start)}
        category = self._scope(scope, ranked[0][0])
        start = time.perf_counter()
        if scope == "blend":
            found = self.index.store.search(query.vector, max(BLEND_POOL * top_k, MIN_POOL), None)
            order = np.argsort(-self._blend(found.cosines, found.categories, ranked), kind="stable")[:top_k]
            found = Found(found.ids[order], found.cosines[order], [found.categories[i] for i in order])
        else:
            found = self.index.store.search(query.vector, top_k, category)
        timings["search"] = _ms(start)
        start = time.perf_counter()
        for part in self.parts.values():
            found = part.rerank(found, query)
        if query.notes:
            timings["rerank"] = _ms(start)
        rows = self.index.rows.get(found.ids)
        pairs = enumerate(zip(rows, found.cosines, strict=True), 1)
        hits = [self._hit(rank, row, float(cosine)) for rank, (row, cosine) in pairs]
        for part in self.parts.values():
            part.annotate(hits, rows, query)
        words = query.cues.get("words")
        return SearchResult(self.model, scope, ranked[:CATEGORIES_SHOWN], hits, timings,
                            None if words is None else sorted(words), **query.result)

    @staticmethod
    def _blend(cosines: np.ndarray, categories: Sequence[str], ranked: list[tuple[str, float]]) -> np.ndarray:
        """Scope "blend": the cosine on [0, 1] x the item's category probability, so a near-identical item of
        another category still shows, below the likely category's close matches."""
        probs = dict(ranked)
        return linear_similarity(cosines) * np.asarray([probs.get(c, 0.0) for c in categories])

    def _hit(self, rank: int, row: dict, cosine: float) -> Hit:
        cosine = min(max(cosine, -1.0), 1.0)
        return Hit(
            rank=rank, id=row["id"], path=row["path"], category=row["category"],
            product_id=row["product_id"] or "", title=row["title"] or "", price=row["price"] or "",
            url=row["url"] or "", similarity=round(float(linear_similarity(cosine)), 4), cosine=round(cosine, 6),
            distance=round(float(np.sqrt(max(0.0, 2.0 - 2.0 * cosine))), 6), catalog_path=self._relative(row["path"]),
            thumbnail=row["path"],
        )

    def exact_ids(self, vector: np.ndarray, top_k: int, scope: str, ranked: list[tuple[str, float]]) -> list[int]:
        """Brute-force top-k ids in the scope, given the query's full category ranking (the reference the ANN
        recall is measured against; the first call reads every vector out of the store)."""
        if self._exact is None:
            ids, vectors = self.index.store.vectors()
            self._exact = ids, vectors, np.asarray(self.index.rows.column("category"))
        ids, vectors, labels = self._exact
        category = self._scope(scope, ranked[0][0])
        inside = np.ones(len(ids), bool) if category is None else labels == category
        if scope == "blend":
            scores = self._blend(vectors @ vector, labels, ranked)
            return [int(i) for i in ids[np.argsort(-scores, kind="stable")[:top_k]]]
        _, top = nearest(vectors[inside], vector, top_k)
        return [int(i) for i in ids[inside][top[0]]]

    def similarity(self, cosine: float, category: str | None = None) -> float:
        """What a hit's cosine means (see the module's docstring)."""
        calibration = self.parts.get("similarity")
        return calibration.score(cosine, category) if calibration else round(float(linear_similarity(cosine)), 4)

    def explain(
        self, image: ImageSource, item_id: int, cues: QueryCues | None = None, vector: np.ndarray | None = None
    ) -> Explanation:
        """Why catalog item `item_id` matched the query photo: what each part gives (the keypoints one homography
        explains, in each photo's own pixels; the voting words both carry, when the query's `cues` hold its
        words) and the hit's similarity. `vector`: the query's, when the caller kept it.

        Raises:
            ImageError: the query photo cannot be read.
            IndexCorruptError: the index has no item `item_id`."""
        photo = load_image(image)
        row = self.index.rows.get([item_id])[0]
        fields = {"query_points": np.zeros((0, 2), np.float32), "catalog_points": np.zeros((0, 2), np.float32),
                  "shared_words": None}
        for part in self.parts.values():
            fields.update(part.explain(row, photo, cues or QueryCues()))
        vector = self._queries.embed([photo])[0] if vector is None else vector
        cosine = float(np.clip(vector @ self.index.store.vectors([item_id])[1][0], -1.0, 1.0))
        return Explanation(**fields, similarity=self.similarity(cosine, row["category"]))

    def catalog_photo(self, item_id: int) -> Image.Image:
        """Catalog item `item_id`'s photo upright at its full size (its thumbnail, scaled up, when the photo is
        no longer where the index found it): what `Explanation.picture` draws on."""
        row = self.index.rows.get([item_id])[0]
        try:
            return load_image(row["path"])
        except ImageError:
            thumbnails = self.parts.get("thumbnails")
            return load_image(thumbnails.path(row) if thumbnails else row["path"]).resize((row["width"], row["height"]))

    def _relative(self, path: str) -> str:
        """A catalog photo's path as its catalog names it: never the server's folders (what a client sees)."""
        if self._catalog_root is None:
            return Path(path).name
        return Path(path).relative_to(self._catalog_root).as_posix()

    def search(
        self, image: ImageSource, top_k: int = 30, scope: str = DEFAULT_SCOPE, rerank: bool | None = None,
        read_text: bool | None = None,
    ) -> SearchResult:
        """The top_k catalog items most like `image`, most similar first (see `lookalike.search`)."""
        start = time.perf_counter()
        photo = load_image(image)
        query = self._query(*embed_with_keypoints(self, photo, rerank), rerank=rerank, read_text=read_text)
        embed_ms = _ms(start)
        result = self._search(query, top_k, scope)
        result.timings_ms = {"embed": embed_ms, **result.timings_ms, "total": _ms(start)}
        return result

    def embed_query(
        self, image: ImageSource, rerank: bool | None = None, read_text: bool | None = None
    ) -> tuple[np.ndarray, QueryCues]:
        """The query's vector and its cues; keep both to re-run `search_vector` without the photo. One cue after
        the other (`search` extracts the keypoints beside the network: `query_photos.embed_with_keypoints`; a
        batch's second views are embedded first, docs/experiments/second-view.md)."""
        photo = load_image(image)
        vector = self._queries.embed([photo])[0]
        return vector, self.query_cues(photo, vector, rerank, read_text)

    def query_cues(
        self, photo: Image.Image, vector: np.ndarray, rerank: bool | None = None, read_text: bool | None = None,
        cues: QueryCues | None = None,
    ) -> QueryCues:
        """The cues of a decoded query photo (and its `vector`) that search will use, beside those given
        (`cues`: a second view embedded in a batch, say). A cue read only while the category is ranked (the
        words, read when the other cues leave it unsure) is read here too."""
        query = self._query(vector, photo, cues, rerank=rerank, read_text=read_text)
        if any(part.pending(query) for part in self.parts.values()):
            self._rank(query)
        return query.cues

    def example_paths(self, count: int) -> list[str]:
        """One photo of each of the first `count` categories: a demo's example queries."""
        return self.index.rows.first_per_category(count)

    def catalog_roots(self) -> list[str]:
        """The folders holding the catalog photos (what a web app may serve)."""
        return self.index.rows.folders()
