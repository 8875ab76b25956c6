"""Turn RGB photos into the normalised square tensors a product backbone expects.

The resize policy matters for products: `squash` keeps the whole item in view (a centre crop can cut
off the ends of a belt or a tie), `pad` keeps the aspect ratio on a white background (as on a shop
page), `crop` is the usual ImageNet centre crop. The policy is part of an index's recorded config,
so queries are always prepared the way the catalog was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from lookalike.images.loading import ImageSource, load_image

RESIZE_POLICIES = ("squash", "pad", "crop")
PAD_COLOUR = (255, 255, 255)


@dataclass(frozen=True)
class Preprocess:
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "squash"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_POLICIES:
            raise ValueError(f"resize policy must be one of {RESIZE_POLICIES}, got {self.resize!r}")

    def square(self, image: Image.Image) -> Image.Image:
        """`image` as a size x size RGB image, following the resize policy."""
        target = (self.size, self.size)
        if self.resize == "squash":
            return image.resize(target, Image.Resampling.BICUBIC)
        if self.resize == "pad":
            return ImageOps.pad(image, target, Image.Resampling.BICUBIC, color=PAD_COLOUR)
        return ImageOps.fit(image, target, Image.Resampling.BICUBIC)

    def load(self, source: ImageSource) -> Image.Image:
        """The photo decoded for this input size: a large JPEG at a reduced scale that keeps both sides at
        least twice the input side (the resize still sees plenty of pixels; the decode costs a fraction)."""
        return load_image(source, draft=2 * self.size)

    def array(self, image: Image.Image) -> np.ndarray:
        """float32 [3, size, size], normalised with the model's mean and std."""
        pixels = np.asarray(self.square(image), dtype=np.float32) / 255.0
        pixels = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))

    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """A float32 [N, 3, size, size] batch (what training feeds a torch model)."""
        return torch.from_numpy(np.stack([self.array(image) for image in images]))

    def to_dict(self) -> dict:
        return asdict(self)
