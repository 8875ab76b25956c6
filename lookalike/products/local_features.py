"""Every catalog item's local features, stored in the index for spatial re-ranking (`rerank`).

Written at build time (`lookalike build --local-features`; an update copies its unchanged photos' rows), read
by memory-mapping, so a query touches only the rows of the candidates it verifies. Layout in INDEX/local/
(`FOLDER`):
`ids.npy` (sorted item ids), `offsets.npy` (row i's keypoints are points[offsets[i]:offsets[i + 1]]),
`points.npy` (float16 [total, 2]) and `descriptors.npy` (uint8 [total, 128]): 132 bytes a keypoint, at most 66
KB an item (44 KB on average over the shared catalog, whose small fashion photos have few keypoints).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lookalike.images.loading import ImageError, load_image
from lookalike.products.errors import IndexCorruptError, rebuild_hint
from lookalike.products.spatial import MAX_POINTS, MAX_SIDE, LocalFeatures, extract

log = logging.getLogger(__name__)
FOLDER = "local"
FILES = ("ids", "offsets", "points", "descriptors")
THREADS = 2  # OpenCV's SIFT releases the GIL: one photo per core
#: What the stored features depend on: written into the manifest, compared before an update reuses them.
SETTINGS = {"kind": "sift", "max_side": MAX_SIDE, "max_points": MAX_POINTS}


def write_local_features(
    folder: Path, ids: Sequence[int], paths: Sequence[Path], previous: LocalFeatureTable | None = None
) -> dict:
    """Extract the features of each item's photo into `folder`/local; returns the manifest entry. A photo
    that cannot be read now (it embedded a moment ago) gets no keypoints: it is never verified, only ranked.
    `previous` (an update: unchanged photos keep their ids) supplies the items it holds, so an update
    extracts only its new or changed photos instead of the whole catalog (extraction is the slow part;
    docs/scale.md)."""

    def features(path: Path, stored: LocalFeatures | None) -> LocalFeatures:
        if stored is not None:
            return stored
        try:
            return extract(load_image(path))
        except ImageError:
            return LocalFeatures.empty()

    order = np.argsort(np.asarray(ids, np.int64), kind="stable")
    stored = previous.get([ids[i] for i in order]) if previous else [None] * len(order)
    with ThreadPoolExecutor(THREADS) as pool:
        found = list(pool.map(features, [paths[i] for i in order], stored))
    counts = np.array([len(item.points) for item in found], np.int64)
    arrays = {
        "ids": np.asarray(ids, np.int64)[order],
        "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "points": np.concatenate([item.points for item in found] or [np.zeros((0, 2), np.float16)]),
        "descriptors": np.concatenate([item.descriptors for item in found] or [np.zeros((0, 128), np.uint8)]),
    }
    (folder / FOLDER).mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(folder / FOLDER / f"{name}.npy", array)
    return {**SETTINGS, "items": len(found), "reused": sum(item is not None for item in stored),
            "bytes": int(sum(array.nbytes for array in arrays.values()))}


def reusable(folder: Path, entry: dict | None) -> LocalFeatureTable | None:
    """The local features of the index in `folder` (its manifest entry: `entry`) when they were extracted
    with today's settings, so an update can copy them; None otherwise (extract everything again)."""
    if not entry or any(entry.get(key) != value for key, value in SETTINGS.items()):
        return None
    try:
        return LocalFeatureTable(folder)
    except IndexCorruptError as exc:  # the update mends it: every photo is extracted again
        log.warning("%s; extracting every photo's keypoints again", exc)
        return None


class LocalFeatureTable:
    """The stored features of an index, memory-mapped; `get(ids)` from any thread."""

    def __init__(self, folder: Path) -> None:
        self._arrays = {}
        for name in FILES:
            try:
                self._arrays[name] = np.load(folder / FOLDER / f"{name}.npy", mmap_mode="r")
            except (OSError, ValueError, EOFError) as exc:
                raise IndexCorruptError(f"the index's local features in {folder / FOLDER}: {name}.npy cannot be "
                                        f"read ({exc}); {rebuild_hint(folder)}") from None
        ids, offsets = self._arrays["ids"], self._arrays["offsets"]
        if len(offsets) != len(ids) + 1 or offsets[-1] != len(self._arrays["points"]):
            raise IndexCorruptError(f"the index's local features in {folder / FOLDER} are inconsistent; "
                                    f"{rebuild_hint(folder)}")

    def get(self, ids: Sequence[int]) -> list[LocalFeatures | None]:
        """Each item's features, None for an id the table does not hold."""
        table, offsets = self._arrays["ids"], self._arrays["offsets"]
        rows = np.searchsorted(table, np.asarray(ids, np.int64))
        found: list[LocalFeatures | None] = []
        for item, row in zip(ids, rows, strict=True):
            if row >= len(table) or table[row] != item:
                found.append(None)
                continue
            start, stop = offsets[row], offsets[row + 1]
            found.append(LocalFeatures(np.asarray(self._arrays["points"][start:stop]),
                                       np.asarray(self._arrays["descriptors"][start:stop])))
        return found
