"""Near-duplicate photos: the same picture again (the same file, or a resized, recompressed or cropped copy),
as opposed to another photo of the same product, which a catalog rightly holds several of.

Two stages. The index's vectors shortlist a photo's nearest catalog items (`CANDIDATES`), then a pixel-level
test decides (`overlap`): one photo, in grey, scaled and slid over the other (both ways, at `SIDE` pixels), gives
its best normalised cross-correlation, and where it lines up best, how far the colours differ at the pixels
differing most (a shop's photos of one shirt in two colours line up in grey, not in colour). A copy lines up
with its original pixel for pixel at one scale and place (a crop is a window of it); another photo of the same
product, even from the same shelf, differs in viewpoint, light and background, and no scale and shift lines it
up. The test does not depend on the index's embedder (tuned or not), so its thresholds, measured by
`bench/duplicates.py` on the shared data (docs/benchmarks.md, "Duplicates"), hold for any index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

#: Nearest catalog items the pixel test is run on (one search's first hits).
CANDIDATES = 5
#: Long side, in pixels, at which two photos are compared (the index's thumbnails are 256 px).
SIDE = 96
#: Crops down to this share of the original's width or height are recognised.
SMALLEST_CROP = 0.5
#: The correlation at or above which, and the colour difference (0-255: the `COLOUR_PERCENTILE`th percentile of
#: the pixels' largest channel difference, so a small recoloured part counts on a white studio background) at or
#: below which, two photos are the same picture (chosen by bench/duplicates.py, docs/benchmarks.md "Duplicates").
THRESHOLD = 0.885
COLOUR_LIMIT = 28.5
COLOUR_PERCENTILE = 98


def prepared(image: Image.Image | np.ndarray) -> np.ndarray:
    """A photo as the test compares it: RGB, long side `SIDE`, slightly blurred (recompression noise)."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    picture = picture.convert("RGB")
    scale = SIDE / max(picture.size)
    size = (max(8, round(picture.width * scale)), max(8, round(picture.height * scale)))
    colour = np.asarray(picture.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    return cv2.GaussianBlur(colour, (3, 3), 0)


def _grey(colour: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(colour @ np.array([0.299, 0.587, 0.114], dtype=np.float32))


def _at_scale(part: np.ndarray, whole: np.ndarray, grey: np.ndarray, scale: float) -> tuple[float, float] | None:
    """`part` scaled by `scale`, at its best place in `whole`: the grey correlation and the colour difference."""
    height, width = grey.shape
    size = (round(part.shape[1] * scale), round(part.shape[0] * scale))
    if not (8 <= size[0] <= width and 8 <= size[1] <= height):
        return None
    window = cv2.resize(part, size, interpolation=cv2.INTER_AREA)
    grey_window = _grey(window)
    if float(grey_window.std()) < 1.0:  # a flat picture matches anything: never evidence
        return None
    _, score, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(grey, grey_window, cv2.TM_CCOEFF_NORMED))
    region = whole[y:y + size[1], x:x + size[0]]
    # per pixel, the channel differing most, on a further blur: a pixel of misregistration is not a colour
    difference = np.abs(cv2.GaussianBlur(region, (5, 5), 0) - cv2.GaussianBlur(window, (5, 5), 0)).max(axis=2)
    return float(score), float(np.percentile(difference, COLOUR_PERCENTILE))


def _contained(part: np.ndarray, whole: np.ndarray) -> tuple[float, float]:
    """How well `part`, scaled to a window of `whole` (its full width or height down to `SMALLEST_CROP`), matches
    it at the best scale (a coarse grid, then refined around the best) and place: the grey correlation
    (TM_CCOEFF_NORMED, in [-1, 1]) and the colour difference there."""
    grey = _grey(whole)
    height, width = grey.shape
    coarse = [share * fit for share in np.linspace(1.0, SMALLEST_CROP, 11)
              for fit in (width / part.shape[1], height / part.shape[0])]
    found = {scale: _at_scale(part, whole, grey, scale) for scale in coarse}
    scored = {scale: result for scale, result in found.items() if result is not None}
    if not scored:
        return -1.0, 255.0
    centre = max(scored, key=lambda scale: scored[scale][0])
    for scale in centre * np.linspace(0.96, 1.04, 9):
        result = _at_scale(part, whole, grey, float(scale))
        if result is not None:
            scored[float(scale)] = result
    return max(scored.values())


def overlap(first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """The pixel test on two `prepared` photos, either maybe a crop of the other: the best correlation, and the
    colour difference where it lines up."""
    return max(_contained(first, second), _contained(second, first))


def is_duplicate(score: tuple[float, float]) -> bool:
    return score[0] >= THRESHOLD and score[1] <= COLOUR_LIMIT


@dataclass(frozen=True)
class Match:
    """A catalog item a photo duplicates, and the test's score."""

    item_id: int
    score: tuple[float, float]  # `overlap`'s correlation and colour difference


def best_match(photo: Image.Image | np.ndarray, candidates: Iterable[tuple[int, Path]]) -> Match | None:
    """The candidate (item id, its photo or thumbnail) `photo` is a copy of, the highest scoring, or None."""
    query = prepared(photo)
    found = None
    for item_id, path in candidates:
        with Image.open(path) as stored:
            score = overlap(query, prepared(stored))
        if is_duplicate(score) and (found is None or score[0] > found.score[0]):
            found = Match(item_id, score)
    return found


def _root(parent: dict[int, int], item: int) -> int:
    while parent[item] != item:
        parent[item] = parent[parent[item]]
        item = parent[item]
    return parent[item]


def groups(ids: list[int], vectors: np.ndarray, digests: list[str], picture: Callable[[int], Path],
           block: int = 1024) -> list[list[int]]:
    """Near-duplicate groups of a catalog, each sorted, largest first: items of the same content, and items whose
    photos pass the pixel test against one of their `CANDIDATES` nearest neighbours (`picture(id)`: the photo or
    its thumbnail)."""
    parent = {item: item for item in ids}
    first_of: dict[str, int] = {}
    for item, digest in zip(ids, digests, strict=True):
        parent[_root(parent, item)] = _root(parent, first_of.setdefault(digest, item))
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    seen: dict[int, np.ndarray] = {}
    for start in range(0, len(ids), block):
        cosines = unit[start:start + block] @ unit.T
        for row, nearest in enumerate(np.argsort(-cosines, axis=1)[:, :CANDIDATES + 1], start=start):
            for other in nearest:
                if other == row or _root(parent, ids[row]) == _root(parent, ids[int(other)]):
                    continue
                pair = [seen.setdefault(i, _prepared_file(picture(i))) for i in (ids[row], ids[int(other)])]
                if is_duplicate(overlap(*pair)):
                    parent[_root(parent, ids[row])] = _root(parent, ids[int(other)])
    found: dict[int, list[int]] = {}
    for item in ids:
        found.setdefault(_root(parent, item), []).append(item)
    return sorted((sorted(group) for group in found.values() if len(group) > 1), key=lambda g: (-len(g), g[0]))


def _prepared_file(path: Path) -> np.ndarray:
    with Image.open(path) as stored:
        return prepared(stored)


def index_duplicates(index_dir: Path) -> list[list[dict]]:
    """The near-duplicate groups of an index's catalog (`lookalike duplicates INDEX`): each a list of its
    items' rows (id, path, category, title, product_id), compared on the index's thumbnails (else the photos).

    Raises:
        IndexMissingError, IndexCorruptError: no readable index at `index_dir`.
    """
    from lookalike.products.index import load_index
    from lookalike.products.parts.thumbnails import thumbnail_path

    loaded = load_index(index_dir)
    try:
        rows = {row["id"]: row for row in loaded.rows}
        ids, vectors = loaded.store.vectors()
        ids = [int(item) for item in ids]

        def picture(item: int) -> Path:
            thumbnail = thumbnail_path(loaded.folder, item)
            return thumbnail if thumbnail.is_file() else Path(rows[item]["path"])

        found = groups(ids, np.asarray(vectors, dtype=np.float32), [rows[item]["sha256"] for item in ids], picture)
    finally:
        loaded.close()
    keys = ("id", "path", "category", "title", "product_id")
    return [[{key: rows[item][key] for key in keys} for item in group] for group in found]
