"""Model zoo: registered embedders for product search and face verification, timm-style.

`create_embedder(name)` builds a product embedder, `create_face_model(name)` a face model;
`get_face_cfg(name)` and `get_entry(kind, name).cfg` describe a model without building it. Names are
imported on first use, so `import model_zoo` costs no torch until a model is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_FACE_MODEL": "model_zoo.registry",
    "DEFAULT_PRODUCT_MODEL": "model_zoo.registry",
    "FaceCfg": "model_zoo.registry",
    "ProductCfg": "model_zoo.registry",
    "UnknownModelError": "model_zoo.registry",
    "WeightsUnavailableError": "model_zoo.registry",
    "get_entry": "model_zoo.registry",
    "list_models": "model_zoo.registry",
    "FaceModel": "model_zoo.face_embedders",
    "create_face_model": "model_zoo.face_embedders",
    "distances": "model_zoo.face_embedders",
    "get_face_cfg": "model_zoo.face_embedders",
    "list_face_models": "model_zoo.face_embedders",
    "ProductEmbedder": "model_zoo.product_embedders",
    "create_embedder": "model_zoo.product_embedders",
    "list_product_models": "model_zoo.product_embedders",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'model_zoo' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
