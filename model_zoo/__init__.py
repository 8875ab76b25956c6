"""Model zoo: registered embedders for product search and face verification."""

from model_zoo import imagenet_faces, projected  # noqa: F401  (register their models)
from model_zoo.face_embedders import (
    DEFAULT_FACE_MODEL,
    FaceModel,
    create_face_model,
    distances,
    get_face_cfg,
    list_face_models,
)
from model_zoo.product_embedders import (
    DEFAULT_PRODUCT_MODEL,
    ProductEmbedder,
    create_embedder,
    list_product_models,
)
from model_zoo.registry import UnknownModelError, WeightsUnavailableError, get_entry, list_models

__all__ = [
    "DEFAULT_FACE_MODEL",
    "DEFAULT_PRODUCT_MODEL",
    "FaceModel",
    "ProductEmbedder",
    "UnknownModelError",
    "WeightsUnavailableError",
    "create_embedder",
    "create_face_model",
    "distances",
    "get_entry",
    "get_face_cfg",
    "list_face_models",
    "list_models",
    "list_product_models",
]
