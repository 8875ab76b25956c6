"""Make the app's example face pair (in lookalike/app/examples/, so the package ships it) from a
public-domain photo that ships with scikit-image.

The repo ships only what it makes itself: NASA's portrait of astronaut Eileen Collins
(`skimage.data.astronaut`) and a re-shot variant of it (mirrored, tilted, darker, smaller),
so the face tab has a same-person example that needs no downloaded data.
Run: python assets/make_examples.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageEnhance
from skimage import data

#: Inside the package: the wheel (`pip install lookalike[app]`) ships them as package data.
OUT = Path(__file__).resolve().parent.parent / "lookalike" / "app" / "examples"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    portrait = Image.fromarray(data.astronaut())
    portrait.save(OUT / "astronaut.jpg", quality=90)
    variant = portrait.transpose(Image.Transpose.FLIP_LEFT_RIGHT).rotate(8, fillcolor=(40, 40, 40))
    variant = ImageEnhance.Brightness(variant).enhance(0.75).resize((320, 320), Image.Resampling.LANCZOS)
    variant.save(OUT / "astronaut_variant.jpg", quality=85)


if __name__ == "__main__":
    main()
