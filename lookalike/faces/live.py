"""A face gallery index served while it is rebuilt: `build-faces --update` is picked up within seconds,
without a restart, by the same mechanism as the product index (`lookalike.vectors.live.LiveIndex`).

    live = LiveGallery("face_index")             # loads now; watches the folder every 2 s
    with live.gallery() as gallery:              # one request: the gallery current when it began
        gallery.identify("party.jpg")
    live.problem                                 # None, or why the gallery is not (or no longer) served

The face model is not reloaded: galleries of one model share its pipeline (`gallery.Gallery.pipeline`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lookalike.faces.any_gallery import open_gallery
from lookalike.faces.gallery import Gallery
from lookalike.faces.process_pool import ParallelFacePipeline
from lookalike.vectors.live import DEFAULT_INTERVAL, IndexUnavailableError, LiveIndex

__all__ = ["IndexUnavailableError", "LiveGallery"]


class LiveGallery(LiveIndex[Gallery]):
    """The newest readable face gallery at `index_dir`, leased per request; a missing or damaged one is
    `problem`, not an exception, until a build makes it readable.

    Args:
        index_dir: the gallery folder (`build-faces --out`).
        interval: seconds between checks of its generation (0: no watcher; call `refresh`).
        pipeline: the face pipeline every loaded gallery uses (a server's helper processes); None: the
            model's shared one.
    """

    def __init__(
        self, index_dir: str | Path, interval: float = DEFAULT_INTERVAL, pipeline: ParallelFacePipeline | None = None
    ) -> None:
        self.pipeline = pipeline
        super().__init__(index_dir, self._load_gallery, _close, interval, name="face gallery")

    def _load_gallery(self, path: Path, current: Gallery | None) -> Gallery:
        return open_gallery(path, self.pipeline)  # a face gallery, or a people index's named people

    @contextmanager
    def gallery(self) -> Iterator[Gallery]:
        """`lease`: the gallery to answer one request with (IndexUnavailableError when none is loaded)."""
        with self.lease() as gallery:
            yield gallery


def _close(gallery: Gallery) -> None:
    gallery.close()  # type: ignore[attr-defined]  # both kinds on disk close their store
