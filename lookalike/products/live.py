"""A product searcher that follows its index folder: `lookalike build --update` is served within seconds,
without a restart and without a failed request (`lookalike.vectors.live.LiveIndex`, products plugged in).

    live = LiveSearcher("index")                 # loads now; watches the folder every 2 s
    with live.searcher() as searcher:            # one request: the searcher current when it began
        result = searcher.search("photo.jpg")
    live.problem                                 # None, or why the index is not (or no longer) served

A reload keeps the embedders of the searcher in use when the new index was built with the same ones (an update
always is), so it costs only opening the new folder; the replaced searcher is closed after its last request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from lookalike.products.index import IndexManifest, load_index
from lookalike.products.search import ProductSearcher
from lookalike.vectors.live import DEFAULT_INTERVAL, IndexUnavailableError, LiveIndex

if TYPE_CHECKING:
    from model_zoo.product_embedders import ProductEmbedder

__all__ = ["DEFAULT_INTERVAL", "IndexUnavailableError", "LiveSearcher", "load_searcher"]


def _same_backbone(before: IndexManifest, after: IndexManifest) -> bool:
    """Whether two manifests name the same product embedder: the same config, and the same tuning if tuned
    (an update that keeps its tuned backbone keeps the same entry; one that tunes again writes a new one)."""
    return before.embedder == after.embedder and before.tuning == after.tuning


def load_searcher(
    index_dir: Path, current: ProductSearcher | None = None, embedder: ProductEmbedder | None = None
) -> ProductSearcher:
    """`ProductSearcher.load`, reusing `current`'s embedder and its parts' models where the new index names the
    same configs (loading a model costs seconds; an update keeps its index's models), else `embedder` if given."""
    from model_zoo.product_embedders import create_embedder

    index = load_index(Path(index_dir))
    try:
        manifest = index.manifest
        if embedder is None and current is not None and _same_backbone(current.index.manifest, manifest):
            embedder = current.embedder
        return ProductSearcher(index, embedder or create_embedder(**manifest.embedder_config(index.folder)), current)
    except BaseException:
        index.close()
        raise


class LiveSearcher(LiveIndex[ProductSearcher]):
    """The newest readable product index at `index_dir`, as a `ProductSearcher` leased per request.

    Construction loads the index at once; a missing or damaged one does not raise: `problem` says why (the
    message names the file and the rebuild command) and `searcher()` raises IndexUnavailableError with it,
    until a build makes the folder readable and the watcher loads it.

    Args:
        index_dir: the index folder.
        interval: seconds between checks of the folder's generation (0: no watcher; call `refresh`).
        embedder: the product embedder to use instead of the one the manifest names (tests, a shared model).
    """

    def __init__(
        self, index_dir: str | Path, interval: float = DEFAULT_INTERVAL, embedder: ProductEmbedder | None = None
    ) -> None:
        self.embedder = embedder
        super().__init__(index_dir, self._load_searcher, ProductSearcher.close, interval, name="product index")

    def _load_searcher(self, path: Path, current: ProductSearcher | None) -> ProductSearcher:
        return load_searcher(path, current, self.embedder)

    @contextmanager
    def searcher(self) -> Iterator[ProductSearcher]:
        """`lease`: the searcher to answer one request with (IndexUnavailableError when none is loaded)."""
        with self.lease() as searcher:
            yield searcher
