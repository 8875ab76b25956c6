"""A searcher's fast query path (issue 37): the catalog photos its query network's INT8 twin is calibrated on
(`model_zoo.product_embedders.QUERY_INT8`), and the query's keypoints extracted in a thread while the network
embeds the photo (`embed_with_keypoints`; OpenCV's SIFT and onnxruntime release the GIL)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from lookalike.images.loading import ImageError, load_image
from lookalike.products import spatial
from lookalike.products.index import LoadedIndex
from lookalike.products.parts.keypoints import KeypointCue
from lookalike.products.results import QueryCues

#: Catalog photos the INT8 query network is calibrated on, spread evenly over the index's rows (category order).
CALIBRATION_PHOTOS = 64


def calibration_photos(index: LoadedIndex, count: int | None = None) -> list[Image.Image]:
    """Up to `count` (CALIBRATION_PHOTOS) of the index's catalog photos, spread over its rows; a photo no longer
    readable is skipped."""
    count, paths = CALIBRATION_PHOTOS if count is None else count, index.rows.column("path")
    photos = []
    for i in dict.fromkeys(np.linspace(0, len(paths) - 1, min(count, len(paths))).astype(int).tolist()):
        try:
            photos.append(load_image(paths[i]))
        except ImageError:
            continue
    return photos


def calibration(index: LoadedIndex) -> Callable[[], list[Image.Image]]:
    """`calibration_photos` of `index`, read when called (`ProductEmbedder.for_queries`: once, when no INT8 twin
    calibrated on them is cached yet)."""
    return lambda: calibration_photos(index)


#: Whether a query's keypoints are extracted in a thread while its network runs, rather than after it: on held-out
#: queries of the half split the whole query took 0.83-0.89 of the time (docs/experiments/query-speed.md).
KEYPOINTS_BESIDE = True
_BESIDE = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="query-keypoints")  # threads start on use


def embed_with_keypoints(
    searcher: Any, photo: Image.Image, rerank: bool | None
) -> tuple[np.ndarray, Image.Image, QueryCues | None]:
    """The query's vector, its photo and, when its search re-ranks, its keypoints cue, extracted in a thread while
    the network embeds the photo: the first arguments of `searcher`'s `_query` (a `search.ProductSearcher`)."""
    part = searcher.part("local_features")
    if not KEYPOINTS_BESIDE or part is None or not searcher.wants("rerank", rerank):
        return searcher._queries.embed([photo])[0], photo, None
    pending = _BESIDE.submit(spatial.extract, photo, spatial.QUERY_SIDE)
    vector = searcher._queries.embed([photo])[0]
    return vector, photo, QueryCues({part.name: KeypointCue(pending.result())})
