"""`efficientnet_lite0_face`: ImageNet features of dlib-aligned face chips, never trained on faces.

It is the frozen backbone `train-embedding` starts from: generic pooled features (1280-d, unit
length) that tell faces apart only weakly, so the triplet head has something to learn; its eval-faces
score is the baseline the trained head is compared with. Not meant for verification on its own,
hence no threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from model_zoo.face_embedders import FaceModel, Weights
from model_zoo.product_embedders import create_embedder
from model_zoo.registry import FaceCfg, register


@register(
    "face",
    "efficientnet_lite0_face",
    FaceCfg(
        description="ImageNet EfficientNet-Lite0 features of dlib face chips (frozen baseline, no threshold)",
        dim=1280,
        metric="euclidean",
        threshold=None,
        input_size=224,
        alignment="dlib_chip",
        padding=0.25,
        product_model="efficientnet_lite0",  # its packaged weights; not offered as a verification model
        distance_max=2.0,  # unit vectors
        sweep=(0.2, 1.4, 0.01),
    ),
)
class ImageNetFaceFeatures(FaceModel):
    def __init__(self, name: str, cfg: FaceCfg, weights: Weights = None) -> None:
        super().__init__(name, cfg)
        self._embedder = create_embedder(cfg.product_model or "efficientnet_lite0", weights)

    def embed_faces(self, aligned: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        chips = [
            crop if isinstance(crop, Image.Image) else Image.fromarray(np.asarray(crop)) for crop in aligned
        ]
        return self._embedder.embed(chips) if chips else np.zeros((0, self.dim), np.float32)
