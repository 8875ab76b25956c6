"""Search a product index with a photo: embed -> rank categories -> nearest items from the vector store.

Similarity. Vectors are unit length, so Annoy's angular distance d is their Euclidean distance,
d = sqrt(2 - 2 cos). Each hit reports that `distance`, its `cosine`, and a `similarity` a person can read:
the share of the catalog's pairs that close which are of the same category (`calibration`, fitted at build).

Categories. The index's head gives probabilities, blended with a vote of the query's nearest catalog
photos (`NeighbourVote`, settings in the index manifest; an index without them uses the head alone). A head
with a second view (`heads.head_input`) also reads the query's vector from that backbone (`QueryCues.view`).

Spatial re-ranking. An index built with local features (`--local-features`) can verify the first
`spatial.TOP_N` hits: SIFT keypoints of the query matched against each candidate's, kept when one homography
explains them; verified candidates rise (`spatial.rerank`), and the whole catalog's verified first hits vote
for the category (`spatial.category_vote`). On whenever the index has them (`DEFAULT_RERANK`): on the
GroceryStore val queries it raised both exact-product recall@1 and category top-1, for a few times the warm
query time (figures in docs/experiments/spatial-reranking.md and docs/benchmarks.md).

Printed words. An index built with `--read-text` holds the words read on every catalog photo; the query's
words then vote for the category too (`printed_words`), on whenever the index has them: a brand's packs share
their look, not their words ("HAVREDRYCK", "GRÄDDFIL"). Reading is slow next to the rest of a query, so a
query is read only when its other cues leave the category unsure (`printed_words.READ_BELOW`;
docs/experiments/printed-words.md).

Scope. "category" searches only the category ranked first, "all" the whole catalog, "blend" the whole
catalog's nearest items re-ordered by similarity x their category's probability. The store
(`lookalike.vectors.stores`: Annoy in the index folder, or Milvus) returns exact cosines: Annoy's
over-fetched candidates are re-scored against the stored vectors, so ANN error can only drop items,
never misorder them; Milvus scores its hits itself. Hit metadata is read from the catalog's SQLite.

A searcher is loaded once and is safe to query from several threads: the index is read-only after
loading (Annoy's Python queries are thread-safe, spotify/annoy#260; the catalog is read through the one
SQLite connection opened at load, under a lock), and the model runs under `torch.inference_mode` in eval
mode. It keeps reading the folder it loaded after a build swapped in a new one; `lookalike.products.live`
follows the folder and serves each new index as it appears.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from lookalike.images.loading import ImageError, ImageSource, load_image
from lookalike.instances import Instances
from lookalike.products import printed_words, spatial
from lookalike.products.calibration import SimilarityCalibration, linear_similarity
from lookalike.products.explain import Explanation, to_pixels
from lookalike.products.heads import NeighbourVote, head_input, ranking
from lookalike.products.index import LoadedIndex, load_index
from lookalike.products.local_features import LocalFeatureTable
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
#: Whether search verifies its first hits when the index has local features (measured: see the module doc).
DEFAULT_RERANK = True


def _ms(start: float) -> float:
    return round(1000.0 * (time.perf_counter() - start), 2)


class ProductSearcher:
    """An index and its embedder, loaded once and safe to query from several threads.

    Example:
        >>> searcher = ProductSearcher.load("index")
        >>> result = searcher.search("shoe.jpg", top_k=30, scope="all")
        >>> [(hit.category, hit.similarity) for hit in result.results[:3]]
    """

    def __init__(self, index: LoadedIndex, embedder: ProductEmbedder, view: ProductEmbedder | None = None) -> None:
        """`view`: the head's second backbone, made from the manifest when the head has one and none is given."""
        self.index, self.embedder = index, embedder
        view_config = index.manifest.head_view
        if view is None and view_config:
            from model_zoo.product_embedders import create_embedder

            view = create_embedder(**view_config)
        self.view = view if view_config else None
        self._exact: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # eval's reference, on demand
        vote = index.manifest.neighbour_vote
        self.vote = NeighbourVote(**vote) if vote is not None else NeighbourVote(weight=0.0)
        self._head_class = {category: i for i, category in enumerate(index.head.classes)}  # probs columns
        similarity = index.manifest.similarity
        self._calibration = SimilarityCalibration.from_dict(similarity) if similarity else None
        folders = index.rows.folders()
        self._catalog_root = Path(os.path.commonpath(folders)) if folders else None  # hits' paths relative to it
        self.local = LocalFeatureTable(index.folder) if index.manifest.local_features else None
        self.words, self.item_words = None, {}
        if index.manifest.words:
            categories = dict(zip(index.rows.column("id"), index.rows.column("category"), strict=True))
            self.item_words = printed_words.stored_words(index.folder)
            self.words = printed_words.WordTable(self.item_words, categories)

    @classmethod
    def load(cls, index_dir: str | Path, embedder: ProductEmbedder | None = None) -> ProductSearcher:
        """Load an index and the embedder it was built with (and its head's second backbone, if any).

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
        """Release the index's files (its store and catalog connection): a server that reloads an updated
        index closes the replaced searcher (`lookalike.products.live`), so memory does not grow."""
        self.index.close()

    @property
    def model(self) -> str:
        return self.index.manifest.model

    def _scope(self, scope: str, category: str) -> str | None:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        return category if scope == "category" else None

    @staticmethod
    def _blend(cosines: np.ndarray, categories: Sequence[str], ranking: list[tuple[str, float]]) -> np.ndarray:
        """Scope "blend": the cosine on [0, 1] x the item's category probability, so a near-identical item of
        another category still shows, below the likely category's close matches."""
        probs = dict(ranking)
        return linear_similarity(cosines) * np.asarray([probs.get(c, 0.0) for c in categories])

    def exact_ids(self, vector: np.ndarray, top_k: int, scope: str, ranking: list[tuple[str, float]]) -> list[int]:
        """Brute-force top-k ids in the scope, given the query's full category ranking (the reference the ANN
        recall is measured against; the first call reads every vector out of the store)."""
        if self._exact is None:
            ids, vectors = self.index.store.vectors()
            self._exact = ids, vectors, np.asarray(self.index.rows.column("category"))
        ids, vectors, labels = self._exact
        category = self._scope(scope, ranking[0][0])
        inside = np.ones(len(ids), bool) if category is None else labels == category
        if scope == "blend":
            scores = self._blend(vectors @ vector, labels, ranking)
            return [int(i) for i in ids[np.argsort(-scores, kind="stable")[:top_k]]]
        _, top = nearest(vectors[inside], vector, top_k)
        return [int(i) for i in ids[inside][top[0]]]

    def _nearest(self, vector: np.ndarray, top_k: int, category: str | None) -> Found:
        return self.index.store.search(vector, top_k, category)

    def categorize(self, vector: np.ndarray, cues: QueryCues | None = None) -> list[tuple[str, float]]:
        """Every category, likeliest first, with its probability: the head blended with the neighbour vote
        and, given the query's `cues`, with the verified items' vote (keypoints, an index with local
        features) and the printed words' vote (words, an index with words)."""
        cues = cues or QueryCues()
        return self._rank(vector, cues, self._verification(cues))

    def _verification(self, cues: QueryCues) -> spatial.Verification | None:
        if cues.keypoints is None or self.local is None:
            return None
        return spatial.Verification(cues.keypoints, self.local.get, cues.inliers)

    def _rank(
        self, vector: np.ndarray, cues: QueryCues, verification: spatial.Verification | None
    ) -> list[tuple[str, float]]:
        if self.view is not None and cues.view is None:
            raise ValueError(
                f"this index's category head also reads the query's {self.view.name} vector: search with the "
                "photo, or pass the cues `query_cues` gives"
            )
        probs = self.index.head.predict_proba(head_input(vector, cues.view if self.view is not None else None))
        voters = self.vote.k if self.vote.weight > 0 else 0
        pool = max(voters, spatial.TOP_N) if verification is not None else voters
        if pool:  # one store query serves both votes: the nearest `voters` and the verified TOP_N
            found = self._nearest(vector, pool, None)
            labels = np.asarray([self._head_class[category] for category in found.categories], np.int64)
            probs = self.vote.blend(probs, found.cosines[None, :voters], labels[None, :voters])
            if verification is not None:
                counts = verification.counts(found.ids[: spatial.TOP_N])
                probs = spatial.category_vote(probs[0], labels[: spatial.TOP_N], counts)[None]
        if cues.words is not None and self.words is not None:
            probs = printed_words.category_vote(probs[0], self.words.vote(cues.words, self.index.head.classes))[None]
        return ranking(self.index.head.classes, probs[0])

    def search_vector(
        self,
        vector: np.ndarray,
        top_k: int = 30,
        scope: str = DEFAULT_SCOPE,
        cues: QueryCues | None = None,
    ) -> SearchResult:
        """`search` from the query's vector; with the query's keypoints (`cues`, an index with local features)
        the verified items of the whole catalog vote for the category and the first hits are re-ordered, and
        with its words (an index with words) the printed words vote for the category."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        timings: dict[str, float] = {}
        start = time.perf_counter()
        cues = cues or QueryCues()
        verification = self._verification(cues)
        ranking = self._rank(vector, cues, verification)
        timings["categorize"] = _ms(start)
        category = self._scope(scope, ranking[0][0])
        start = time.perf_counter()
        if scope == "blend":
            found = self._nearest(vector, max(BLEND_POOL * top_k, MIN_POOL), None)
            order = np.argsort(-self._blend(found.cosines, found.categories, ranking), kind="stable")[:top_k]
            found = Found(found.ids[order], found.cosines[order], [found.categories[i] for i in order])
        else:
            found = self._nearest(vector, top_k, category)
        timings["search"] = _ms(start)
        inliers = np.full(len(found.ids), -1)
        if verification is not None:
            start = time.perf_counter()
            found, inliers = self._verify(found, verification)
            timings["rerank"] = _ms(start)
        rows = self.index.rows.get(found.ids)
        pairs = zip(rows, found.cosines, inliers, strict=True)
        hits = [self._hit(rank, row, float(cosine), int(count)) for rank, (row, cosine, count) in enumerate(pairs, 1)]
        words = None if cues.words is None else sorted(cues.words)
        if cues.words is not None and self.words is not None:
            for hit in hits:
                hit.shared_words = self.words.shared(cues.words, self.item_words.get(hit.id, ()))
        return SearchResult(self.model, scope, ranking[:CATEGORIES_SHOWN], hits, timings, words)

    def _verify(self, found: Found, verification: spatial.Verification) -> tuple[Found, np.ndarray]:
        """The first TOP_N hits matched against the query's keypoints, all hits re-ordered; each hit's
        inlier count (-1: not verified)."""
        counts = verification.counts(found.ids[: spatial.TOP_N])
        order, _ = spatial.rerank(list(range(len(found.ids))), found.cosines, counts)
        inliers = np.full(len(found.ids), -1)
        inliers[: len(counts)] = counts
        return Found(found.ids[order], found.cosines[order], [found.categories[i] for i in order]), inliers[order]

    def _hit(self, rank: int, row: dict, cosine: float, inliers: int = -1) -> Hit:
        cosine = min(max(cosine, -1.0), 1.0)
        return Hit(
            rank=rank,
            id=row["id"],
            path=row["path"],
            category=row["category"],
            product_id=row["product_id"] or "",
            title=row["title"] or "",
            price=row["price"] or "",
            url=row["url"] or "",
            similarity=round(self.similarity(cosine, row["category"]), 4),
            cosine=round(cosine, 6),
            distance=round(float(np.sqrt(max(0.0, 2.0 - 2.0 * cosine))), 6),
            catalog_path=self._relative(row["path"]),
            thumbnail=self.index.thumbnail(row),
            inliers=None if inliers < 0 else inliers,
        )

    def explain(
        self, image: ImageSource, item_id: int, words: Iterable[str] | None = None, vector: np.ndarray | None = None
    ) -> Explanation:
        """Why catalog item `item_id` matched the query photo: the keypoints one homography explains, in each
        photo's own pixels (none on an index without local features), and the voting words both carry when the
        query's `words` are given (`QueryCues.words`, as search read them) on an index with words. `vector`:
        the query's, when the caller kept it (else the photo is embedded again).

        Raises:
            ImageError: the query photo cannot be read.
            IndexCorruptError: the index has no item `item_id`."""
        photo = load_image(image)
        row = self.index.rows.get([item_id])[0]
        query_points = catalog_points = np.zeros((0, 2), np.float32)
        stored = self.local.get([item_id])[0] if self.local is not None else None
        if stored is not None:
            query_points, catalog_points = spatial.matched_points(spatial.extract(photo), stored)
            query_points = to_pixels(query_points, photo.size)
            catalog_points = to_pixels(catalog_points, (row["width"], row["height"]))
        shared = None
        if words is not None and self.words is not None:
            shared = self.words.shared(words, self.item_words.get(item_id, ()))
        vector = self.embedder.embed([photo])[0] if vector is None else vector
        cosine = float(np.clip(vector @ self.index.store.vectors([item_id])[1][0], -1.0, 1.0))
        return Explanation(query_points, catalog_points, shared, round(self.similarity(cosine, row["category"]), 4))

    def catalog_photo(self, item_id: int) -> Image.Image:
        """Catalog item `item_id`'s photo upright at its full size (its thumbnail, scaled up, when the photo is
        no longer where the index found it): what `Explanation.picture` draws on."""
        row = self.index.rows.get([item_id])[0]
        try:
            return load_image(row["path"])
        except ImageError:
            thumbnail = load_image(self.index.thumbnail(row))
            return thumbnail.resize((row["width"], row["height"]))

    def similarity(self, cosine: float, category: str | None = None) -> float:
        """What a hit's cosine means: the share of catalog pairs that close to an item of `category` which
        share its category (the build's calibration), or the cosine moved onto [0, 1] for an index built
        before calibration."""
        return self._calibration.score(cosine, category) if self._calibration else linear_similarity(cosine)

    def _relative(self, path: str) -> str:
        """A catalog photo's path as its catalog names it: never the server's folders (what a client sees)."""
        if self._catalog_root is None:
            return Path(path).name
        return Path(path).relative_to(self._catalog_root).as_posix()

    def search(
        self,
        image: ImageSource,
        top_k: int = 30,
        scope: str = DEFAULT_SCOPE,
        rerank: bool | None = None,
        read_text: bool | None = None,
    ) -> SearchResult:
        """The top_k catalog items most like `image`, most similar first (see `search` for the arguments)."""
        start = time.perf_counter()
        vector, cues = self.embed_query(image, rerank, read_text)
        embed_ms = _ms(start)
        result = self.search_vector(vector, top_k, scope, cues)
        result.timings_ms = {"embed": embed_ms, **result.timings_ms, "total": _ms(start)}
        return result

    def embed_query(
        self, image: ImageSource, rerank: bool | None = None, read_text: bool | None = None
    ) -> tuple[np.ndarray, QueryCues]:
        """The query's vector and its cues (keypoints when its hits are to be verified, words when they are
        to be read, the head's second view when it has one); keep both to re-run `search_vector` without the
        photo. One after the other: extracting in a thread while the network ran made the network several
        times slower (its two threads wait for each other when one core is taken); with the head's second view,
        threads for the view and the keypoints saved little on an idle machine, not worth a pool in every query
        when a server answering several queries at once keeps both cores busy anyway
        (docs/experiments/second-view.md)."""
        photo = load_image(image)
        vector = self.embedder.embed([photo])[0]
        return vector, self.query_cues(photo, vector, rerank, read_text)

    def query_cues(
        self, photo: Image.Image, vector: np.ndarray, rerank: bool | None = None, read_text: bool | None = None,
        view: np.ndarray | None = None,
    ) -> QueryCues:
        """The cues of a decoded query photo (its `vector` too) that search will use (`wants_rerank`,
        `wants_text`, the head's second view unless given as `view`). The words are read only when every
        other cue leaves the first category under `printed_words.READ_BELOW`: reading is slow, and a sure
        ranking does not need it."""
        if self.view is not None and view is None:
            view = self.view.embed([photo])[0]
        keypoints = spatial.extract(photo) if self.wants_rerank(rerank) else None
        if not self.wants_text(read_text):
            return QueryCues(keypoints, view=view)
        verification = self._verification(QueryCues(keypoints))
        unsure = self._rank(vector, QueryCues(view=view), verification)[0][1] < printed_words.READ_BELOW
        words = printed_words.read_words(photo) if unsure else None
        return QueryCues(keypoints, words, verification.known() if verification else (), view)

    def wants_rerank(self, rerank: bool | None) -> bool:
        """Whether to verify hits: `rerank`, or DEFAULT_RERANK when None, on an index with local features."""
        if rerank and self.local is None:
            raise ValueError("this index has no local features to verify hits with: build it with --local-features")
        return self.local is not None and (DEFAULT_RERANK if rerank is None else rerank)

    def wants_text(self, read_text: bool | None) -> bool:
        """Whether to read the query's words: `read_text`, or yes when None, on an index with words."""
        if read_text and self.words is None:
            raise ValueError("this index holds no printed words to match: build it with --read-text")
        return self.words is not None and read_text is not False

    def example_paths(self, count: int) -> list[str]:
        """One photo from each of the first `count` categories: example queries for a demo."""
        return self.index.rows.first_per_category(count)

    def catalog_roots(self) -> list[str]:
        """The folders holding the catalog photos (what a web app may serve)."""
        return self.index.rows.folders()


_SEARCHERS: Instances[Path, ProductSearcher] = Instances(ProductSearcher.load)


def search(
    photo: ImageSource,
    index: str | Path = "index",
    top_k: int = 30,
    scope: str = DEFAULT_SCOPE,
    rerank: bool | None = None,
    read_text: bool | None = None,
) -> SearchResult:
    """The catalog items that look most like `photo`, in one call.

    The index (built by `lookalike build` / `index_builder.py` / `build_index`) and the embedder it
    was built with are loaded on first use and kept for later calls in this process; a server keeps
    its own `ProductSearcher.load(index)` instead.

    Args:
        photo: a path, PIL image, numpy array or bytes; any mode, EXIF rotation applied.
        index: the index folder.
        top_k: how many items to return, most similar first.
        scope: "category" searches the predicted category only; "all" the whole catalog by similarity;
            "blend" the whole catalog by similarity x category probability.
        rerank: verify the first hits with local features, let verified items vote for the category and
            re-order the hits (an index built with local features; None: DEFAULT_RERANK). Each verified
            hit then reports its `inliers`.
        read_text: read the words printed on the photo and let them vote for the category (an index built
            with --read-text; None: on for such an index), when the other cues are unsure of the category
            (a read query is slow: docs/benchmarks.md).

    Returns:
        A `SearchResult`: the category ranking (label, probability), the hits (path, category,
        product id, title, price, url, similarity in [0, 1], distance) and per-stage timings.

    Raises:
        ImageError: the photo cannot be read (not an image, truncated, too large).
        IndexMissingError, IndexCorruptError: no index at `index`, or a damaged one.
        WeightsUnavailableError: the index's embedder, or its head's second backbone, cannot be loaded here.
        ValueError: top_k below 1, an unknown scope, rerank on an index without local features, or
            read_text on an index without words.

    Example:
        >>> import lookalike
        >>> result = lookalike.search("red_dress.jpg", index="index", top_k=5)
        >>> result.categories[0][0], [hit.path for hit in result.results][:2]
        ('dress', ['catalog/dress/a.jpg', 'catalog/dress/b.jpg'])
    """
    key = Path(index).resolve()
    return _SEARCHERS.get(key).search(photo, top_k, scope, rerank, read_text)
