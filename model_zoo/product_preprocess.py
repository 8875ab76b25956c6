"""Turn RGB photos into the normalised square tensors a product backbone expects.

The resize policy matters for products: `squash` keeps the whole item in view (a centre crop can cut
off the ends of a belt or a tie), `pad` keeps the aspect ratio on a white background (as on a shop
page), `crop` is the usual ImageNet centre crop. The policy is part of an index's recorded config,
so queries are always prepared the way the catalog was.

Photos arrive decoded: reading files (EXIF rotation, alpha, 16-bit, size limits, reduced-scale JPEG
decoding at `Preprocess.draft`) is the caller's job (`lookalike.images.loading.load_image`), so one loader
serves every model and model_zoo needs nothing of `lookalike`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:  # only training's batches are torch tensors; a query's pixels are numpy
    import torch

#: A decoded photo: an RGB PIL image, or a uint8 HxWx3 array.
Pixels = Image.Image | np.ndarray

RESIZE_POLICIES = ("squash", "pad", "crop")
PAD_COLOUR = (255, 255, 255)


def as_rgb(image: Pixels) -> Image.Image:
    """`image` as an RGB PIL image. Anything else (a path, bytes, another mode or dtype) is refused rather
    than converted here, where a second set of conversion rules could quietly disagree with the loader's."""
    if isinstance(image, Image.Image) and image.mode == "RGB":
        return image
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return Image.fromarray(image)
    if isinstance(image, Image.Image):
        found = f"a {image.mode} image"
    elif isinstance(image, np.ndarray):
        found = f"a {image.dtype} array of shape {image.shape}"
    else:
        found = f"a {type(image).__name__}"
    raise TypeError(
        f"expected a decoded photo (an RGB PIL image or a uint8 HxWx3 array), got {found}; "
        "read and convert it with lookalike.images.loading.load_image first"
    )


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

    @property
    def draft(self) -> int:
        """The smallest side worth decoding a photo at for this input: twice the input side. Passed as
        `load_image(path, draft=...)`, a large JPEG is decoded at a reduced scale that keeps both sides at
        least this (the resize still sees plenty of pixels; the decode costs a fraction)."""
        return 2 * self.size

    def array(self, image: Pixels) -> np.ndarray:
        """float32 [3, size, size], normalised with the model's mean and std."""
        pixels = np.asarray(self.square(as_rgb(image)), dtype=np.float32) / 255.0
        pixels = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))

    def __call__(self, images: Sequence[Pixels]) -> torch.Tensor:
        """A float32 [N, 3, size, size] batch (what training feeds a torch model)."""
        import torch

        return torch.from_numpy(np.stack([self.array(image) for image in images]))

    def to_dict(self) -> dict:
        return asdict(self)
