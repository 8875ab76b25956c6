"""Why a hit matched: the keypoints the query and a catalog photo share, and the printed words both carry.

A shopper sees why an item came first, and a catalog manager sees why a wrong one did: the matches one
homography explains (`spatial.matched_points`, the same test that re-ranks the hits) drawn between the two
photos side by side, and the voting words read on both (`printed_words`). Drawn on request, for one hit: the
search itself never keeps the matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from lookalike.products.spatial import MAX_SIDE

#: Height of each photo in the side-by-side picture; the line colours cycle through these.
PANEL_HEIGHT = 360
COLOURS = ((46, 204, 113), (52, 152, 219), (241, 196, 15), (231, 76, 60), (155, 89, 182), (26, 188, 156))


@dataclass
class Explanation:
    """One hit's evidence: inlier keypoints in each photo's own pixels (row i of one matches row i of the
    other), the voting words both photos carry (None when the query was not read), and the hit's similarity."""

    query_points: np.ndarray  # float32 [n, 2]
    catalog_points: np.ndarray  # float32 [n, 2]
    shared_words: list[str] | None
    similarity: float

    @property
    def inliers(self) -> int:
        return len(self.query_points)

    def picture(self, query: Image.Image, catalog: Image.Image) -> Image.Image:
        """The two photos side by side at one height, each match a line between its two keypoints."""
        panels, scales = [], []
        for photo, points in ((query, self.query_points), (catalog, self.catalog_points)):
            scale = PANEL_HEIGHT / photo.height
            panels.append(photo.convert("RGB").resize((max(1, round(photo.width * scale)), PANEL_HEIGHT)))
            scales.append(points * scale)
        gap = 12
        canvas = Image.new("RGB", (panels[0].width + gap + panels[1].width, PANEL_HEIGHT), "white")
        canvas.paste(panels[0], (0, 0))
        canvas.paste(panels[1], (panels[0].width + gap, 0))
        draw = ImageDraw.Draw(canvas)
        offset = np.array([panels[0].width + gap, 0], np.float32)
        for number, (a, b) in enumerate(zip(scales[0], scales[1] + offset, strict=True)):
            colour = COLOURS[number % len(COLOURS)]
            draw.line([tuple(a), tuple(b)], fill=colour, width=1)
            for x, y in (a, b):
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], outline=colour, width=2)
        return canvas


def to_pixels(points: np.ndarray, size: tuple[int, int], side: int = MAX_SIDE) -> np.ndarray:
    """Keypoints found at `side` (`spatial.extract`) in the pixels of a photo of `size` (width, height)."""
    return points.astype(np.float32) * (max(size) / side)
