"""Small JPEG copies of catalog photos, made when an index is built, so a results page sends a few KB
per item instead of the full photo (and the server never re-encodes a photo per request)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from lookalike.images.loading import ImageError, load_image

#: Longest side of a thumbnail, in pixels: sharp in a 6-column gallery on a high-density screen.
THUMBNAIL_SIDE = 256
QUALITY = 85


def _write_one(source: Path, target: Path, side: int) -> bool:
    try:
        image = load_image(source, draft=side)
    except ImageError:
        return False
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    image.save(target, "JPEG", quality=QUALITY, optimize=True)
    return True


def write_thumbnails(sources: Sequence[Path], folder: Path, side: int = THUMBNAIL_SIDE, threads: int = 2) -> int:
    """`folder/<i>.jpg` for `sources[i]`, in `threads` threads (PIL releases the GIL); returns how many
    were written (an unreadable photo gets none, and the app shows the photo itself)."""
    folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(threads) as pool:
        jobs = [pool.submit(_write_one, Path(s), folder / f"{i}.jpg", side) for i, s in enumerate(sources)]
        return sum(job.result() for job in jobs)
