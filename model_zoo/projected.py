"""`projected`: a frozen backbone plus the triplet-trained projection head of `train-embedding`.

The checkpoint names its backbone, so the model is rebuilt from the file alone, as a face model
(`create_face_model("projected", weights=CKPT)`: the backbone's own crop and alignment feed it; the
128-d alpha-scaled embedding it was trained to produce) or as a product embedder
(`create_embedder("projected", weights=CKPT)`, e.g. `index_builder.py --model projected --weights
CKPT`: unit vectors, as the index stores them).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from model_zoo.face_embedders import FaceModel, Weights, create_face_model
from model_zoo.registry import FaceCfg, ProductCfg, WeightsUnavailableError, register
from model_zoo.weights import resolve_weights

if TYPE_CHECKING:  # the head is a torch module, loaded with a checkpoint: listing the models needs no torch
    from model_zoo.projection_head import ProjectionHead

ALPHA = 10.0  # the report's scale; checkpoints carry their own


def _load(path: Path) -> tuple[ProjectionHead, dict]:
    from model_zoo.projection_head import load_checkpoint

    try:
        return load_checkpoint(path)
    except (ValueError, OSError, RuntimeError) as exc:
        raise WeightsUnavailableError(f"cannot load projected from {path}: {exc}") from None


@register(
    "face",
    "projected",
    FaceCfg(
        description="frozen face backbone + triplet-trained 128-d head (train-embedding); weights=CHECKPOINT",
        dim=128,
        metric="euclidean",
        threshold=None,  # each checkpoint carries the threshold measured in its cross-validated evaluation
        alignment="dlib_chip",  # as listed; the checkpoint's backbone decides the crop and its size
        alpha=ALPHA,
        distance_max=2 * ALPHA,
        sweep=(0.5, 2 * ALPHA, 0.1),
    ),
)
class ProjectedFaceModel(FaceModel):
    def __init__(self, name: str, cfg: FaceCfg, weights: Weights = None) -> None:
        path = resolve_weights(name, cfg.weights_source, cfg.weights_file, weights)
        self._head, checkpoint = _load(path)
        backbone = checkpoint["backbone"]
        if backbone["kind"] != "face":
            raise WeightsUnavailableError(f"{path} was trained on {backbone['kind']} features, not faces")
        self.backbone = create_face_model(backbone["name"])
        merged = self.backbone.cfg.replace(  # the backbone's crop (alignment, size, views), this head's distances
            description=cfg.description,
            metric=cfg.metric,
            sweep=cfg.sweep,
            weights_source=None,
            weights_file=None,
            dim=self._head.linear.out_features,
            alpha=self._head.alpha,
            threshold=checkpoint["metrics"].get("threshold"),
            distance_max=2 * self._head.alpha,
        )
        super().__init__(name, merged)

    def embed_faces(self, aligned: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        if not aligned:
            return np.zeros((0, self.dim), np.float32)
        return self._head.project(self.backbone.embed_faces(aligned))


class ProjectedProductEmbedder:
    """A product embedder's features through the trained head, as unit vectors (what the index stores)."""

    def __init__(self, weights: Weights, overrides: dict[str, Any]) -> None:
        """`overrides`: `create_embedder` keywords for the backbone (size, flip, resize, backend, device)."""
        from model_zoo.product_embedders import create_embedder

        path = resolve_weights("projected", None, None, weights)
        self._head, checkpoint = _load(path)
        backbone = checkpoint["backbone"]
        if backbone["kind"] != "product":
            raise WeightsUnavailableError(f"{path} was trained on {backbone['kind']} features, not products")
        self.backbone = create_embedder(backbone["name"], **overrides)
        self.name = "projected"
        self.dim = self._head.linear.out_features
        self.config = {**self.backbone.config, "name": self.name, "weights": str(Path(path).resolve())}
        self.preprocess, self.batch_size = self.backbone.preprocess, self.backbone.batch_size

    def prepare(self, image: Any) -> np.ndarray:
        return self.backbone.prepare(image)

    def embed_prepared(self, pixels: np.ndarray) -> np.ndarray:
        return self._head.project(self.backbone.embed_prepared(pixels)) / self._head.alpha

    def embed(self, images: Sequence, batch_size: int | None = None) -> np.ndarray:
        return self._head.project(self.backbone.embed(images, batch_size)) / self._head.alpha

    def for_queries(self, calibration=None) -> ProjectedProductEmbedder:
        """This embedder as search embeds a query: through the backbone's query twin (`ProductEmbedder.for_queries`,
        `calibration` passed on)."""
        queries = self.backbone.for_queries(calibration)
        if queries is self.backbone:
            return self
        twin = copy.copy(self)
        twin.backbone, twin.config = queries, {**self.config, "flip": queries.flip}
        if queries.int8:
            twin.config["int8"] = True
        return twin


@register(
    "product",
    "projected",
    ProductCfg(description="product embedder + triplet-trained 128-d head (train-embedding); weights=CHECKPOINT"),
)
def create_projected_product(name: str, cfg: ProductCfg, weights: Weights = None) -> ProjectedProductEmbedder:
    """The backbone keeps its own config where the caller left this entry's defaults; the caller's
    size, flip, resize, backend and device reach it."""
    defaults = ProductCfg()
    keys = ("size", "flip", "resize", "backend", "device")
    overrides = {key: getattr(cfg, key) for key in keys if getattr(cfg, key) != getattr(defaults, key)}
    return ProjectedProductEmbedder(weights, overrides)
