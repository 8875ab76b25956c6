"""`lookalike.search`: product search in one call, for scripts and long-running processes alike.

Each resolved index path gets one `LiveSearcher` (kept in an `Instances`), made on the first call: it loads
the index and the embedder its manifest names, then follows the folder, so after `lookalike build --update`
swaps a new index in, later calls answer from it within `live.DEFAULT_INTERVAL` seconds plus its load time.
Every call leases the searcher current when it began; a replaced one is closed after its last call.

A first call that cannot load the index raises the loading error itself (IndexMissingError,
IndexCorruptError, WeightsUnavailableError) and keeps nothing, so the next call tries again.
"""

from __future__ import annotations

from pathlib import Path

from lookalike.images.loading import ImageSource
from lookalike.instances import Instances
from lookalike.products.live import DEFAULT_INTERVAL, LiveSearcher
from lookalike.products.results import SearchResult
from lookalike.products.search import DEFAULT_SCOPE

__all__ = ["search"]


def _open(path: Path) -> LiveSearcher:
    """The live searcher of the index at `path`; raises what loading it raised when nothing could be loaded."""
    return LiveSearcher(path, DEFAULT_INTERVAL).loaded_or_raise()


_LIVE: Instances[Path, LiveSearcher] = Instances(lambda path: _open(path))


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
    was built with are loaded on first use and kept for later calls in this process; the folder is then
    followed, so an index that `lookalike build --update` swapped in is served within seconds. A server
    keeps its own `lookalike.products.live.LiveSearcher(index)` instead.

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
        product id, title, price, url, similarity in [0, 1], distance), per-stage timings, and whether the
        catalog has anything like the photo (`in_catalog`, `in_catalog_score`; None for an index built
        before the decision).

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
    with _LIVE.get(key).searcher() as searcher:
        return searcher.search(photo, top_k, scope, rerank, read_text)
