"""Small JPEG copies of catalog photos, so a results page sends a few KB per item instead of the full
photo, and the server never re-encodes a photo per request.

A thumbnail is made while the photo is decoded for its embedding (`remember`, in the decoding threads:
no second decode), kept in the cache by the photo's content hash, and copied into each index built
(`write_thumbnails`); a photo the cache has no thumbnail for is decoded once more there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from lookalike.images.loading import ImageError, load_image
from lookalike.paths import cache_dir

#: Longest side of a thumbnail, in pixels: sharp in a 6-column gallery on a high-density screen.
THUMBNAIL_SIDE = 256
QUALITY = 85


def _cached(digest: str) -> Path:
    return cache_dir() / "thumbnails" / digest[:2] / f"{digest}.jpg"


def remember(image: Image.Image, digest: str) -> None:
    """Keep a thumbnail of a decoded photo in the cache (written atomically: builds may run side by side)."""
    target = _cached(digest)
    if target.is_file():
        return
    small = image.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BICUBIC, reducing_gap=2.0)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{id(small)}.tmp")
    small.save(tmp, "JPEG", quality=QUALITY)
    os.replace(tmp, target)


def _write_one(source: Path, digest: str, target: Path, earlier: Path | None) -> bool:
    if earlier is not None and earlier.is_file():
        shutil.copyfile(earlier, target)
        return True
    if not _cached(digest).is_file():
        try:
            remember(load_image(source, draft=THUMBNAIL_SIDE), digest)
        except ImageError:
            return False
    shutil.copyfile(_cached(digest), target)
    return True


def write_thumbnails(
    sources: Sequence[Path], digests: Sequence[str], folder: Path, ids: Sequence[int], earlier: Path | None = None,
    threads: int = 2,
) -> int:
    """`folder/<id>.jpg` for each source; returns how many were written (an unreadable photo gets none,
    and the app shows the photo itself). An update passes the previous index's thumbnail folder
    (`earlier`): a kept item's thumbnail is copied from there, under the same id."""
    folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(threads) as pool:
        jobs = [
            pool.submit(_write_one, Path(source), digest, folder / f"{item_id}.jpg",
                        earlier / f"{item_id}.jpg" if earlier else None)
            for source, digest, item_id in zip(sources, digests, ids, strict=True)
        ]
        return sum(job.result() for job in jobs)
