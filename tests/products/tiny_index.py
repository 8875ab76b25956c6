"""Tiny product indexes for tests of the index's life cycle (live reload, damage, crashes): generated colour
photos and a stand-in embedder, so a build takes a second and needs no model (fixtures: conftest.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from lookalike.images.loading import load_image
from lookalike.products.build import build_index
from model_zoo.product_preprocess import Preprocess

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


class ColourEmbedder:
    """A stand-in backbone: mean colour and colour statistics, unit length (no model to load)."""

    name = "colour-test"
    dim = 8
    batch_size = 8
    config: ClassVar[dict] = {"name": "colour-test", "size": 16, "flip": False, "resize": "squash"}
    preprocess = Preprocess(16, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))

    def embed_prepared(self, pixels: np.ndarray) -> np.ndarray:
        mean, std = pixels.mean((2, 3)), pixels.std((2, 3))
        spread = mean.max(1, keepdims=True) - mean.min(1, keepdims=True)
        vectors = np.concatenate([mean, std, spread, np.full_like(spread, 0.1)], axis=1).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def embed(self, images, batch_size: int | None = None) -> np.ndarray:
        return self.embed_prepared(np.stack([self.preprocess.array(load_image(image)) for image in images]))

    def for_queries(self, calibration=None) -> ColourEmbedder:
        return self  # no mirror image to leave out


def colour_photos(root: Path, per_colour: int, start: int = 0, seed: int = 0) -> Path:
    """`per_colour` noisy photos of each colour under root/<colour>/, numbered from `start`."""
    rng = np.random.default_rng(seed + start)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + per_colour):
            pixels = np.clip(np.asarray(colour) + rng.normal(0, 50, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")
    return root


def build_tiny(catalog: Path, out: Path, **options) -> dict:
    """A build of `catalog` into `out` with the stand-in embedder and no second view."""
    return build_index(catalog, out, embedder=ColourEmbedder(), fast=True, trees=2, head_model="none", show_bar=False,
                       **options)


def folder_digests(folder: Path) -> dict[str, str]:
    """Every file under `folder` and its SHA-256: equal before and after means the folder is untouched."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
