"""A name -> factory registry in timm's manner, shared by the product and the face models.

Each entry carries a typed, frozen config (`ProductCfg` or `FaceCfg`, in the role of timm's
`pretrained_cfg`: input size, normalisation, metric, threshold, where the weights live...), so a
caller can ask a model how to feed it and how to read its distances without building it. Every
factory has one signature, `factory(name, cfg, weights=None)`. The modules that register models are
imported on the first lookup, so importing the registry (or the `lookalike` CLI) costs no torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

KINDS = ("product", "face")
#: The models the library, the CLI and the app use unless told otherwise (see each entry's comments).
DEFAULT_PRODUCT_MODEL = "efficientnet_lite1"
DEFAULT_FACE_MODEL = "arcface_mobilefacenet"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
#: Modules whose import registers models; loaded on the first lookup.
MODEL_MODULES = (
    "model_zoo.product_models",
    "model_zoo.face_embedders",
    "model_zoo.imagenet_faces",
    "model_zoo.projected",
)

Weights = str | os.PathLike | None
C = TypeVar("C", bound="ModelCfg")


class UnknownModelError(KeyError):
    """A model name that is not registered; the message lists the names that are."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class WeightsUnavailableError(RuntimeError):
    """Weights that cannot be loaded here (offline, uncached, or a bad file)."""


@dataclass(frozen=True)
class ModelCfg:
    """What every model declares: a description and where its default weights live."""

    description: str = ""
    weights_source: str | None = None  # a package shipping the file, "torch_hub", or None (weights=PATH)
    weights_file: str | None = None  # the file inside that source

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ProductCfg(ModelCfg):
    size: int | None = None  # square input side; None: the network's own
    resize: str = "squash"  # or "crop"
    flip: bool = True  # average each photo's features with its mirror image's
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    metric: str = "euclidean"  # unit vectors: Euclidean and cosine rank alike
    backend: str | None = None  # "auto" | "onnx" | "torch"; None: LOOKALIKE_BACKEND, else "auto"
    device: str | None = None  # "cpu" | "cuda"; None: a GPU when torch sees one


@dataclass(frozen=True, kw_only=True)
class FaceReading:
    """How a face model's distances are read and shown: its calibrated thresholds, the slider's range, the
    sweep. None of it changes an embedding, so it is never part of what caches one (`FaceCfg.embedding_key`):
    a field of this kind belongs here, not in `FaceCfg`'s own."""

    threshold: float | None = None  # "same person" at or below; measured per model on LFW, None if not
    # "this gallery person" at or below in a 1:N search: a stranger's nearest of many faces is closer than one
    # pair's, so it is stricter; chosen for 1% of strangers named on LFW's identification protocol (docs/faces.md)
    identify_threshold: float | None = None
    distance_max: float = 2.0  # the slider's end
    sweep: tuple[float, float, float] = (0.3, 1.6, 0.01)  # thresholds worth sweeping: start, stop, step


@dataclass(frozen=True)
class FaceCfg(ModelCfg, FaceReading):
    """A face model: what it computes (its own fields and the weights) and how its distances are read
    (`FaceReading`'s, given and read as flat keywords: `FaceCfg(dim=512, threshold=0.76).threshold`)."""

    dim: int = 0
    metric: str = "euclidean"
    input_size: int | None = None
    alignment: str = "box_crop"  # or "dlib_chip", "arcface_5point"
    padding: float = 0.25  # dlib chips
    margin: int = 0  # box crops
    views: tuple[tuple[str, float, float], ...] = ()  # dlib chips: (box, scale, padding) averaged
    flip: bool = False  # average each crop with its mirror image
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    alpha: float = 1.0  # embedding scale (the report's alpha = 10)
    product_model: str | None = None  # face features taken from a product embedder

    def embedding_key(self) -> dict[str, Any]:
        """The fields that determine the model's embedding of a face: every field but the description and
        `FaceReading`'s, so recalibrating a threshold or widening the slider keeps every cached embedding."""
        shown = {f.name for f in dataclasses.fields(FaceReading)} | {"description"}
        return {name: value for name, value in self.to_dict().items() if name not in shown}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    factory: Callable[[str, Any, Weights], Any]
    cfg: ModelCfg


_ENTRIES: dict[tuple[str, str], ModelEntry] = {}
_FALLBACKS: dict[str, Callable[..., Any]] = {}
_loaded = False


def _load_model_modules() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in MODEL_MODULES:
            importlib.import_module(module)


def register(kind: str, name: str, cfg: ModelCfg) -> Callable:
    """Decorator: register `factory(name, cfg, weights=None)` under `name` for `kind`."""
    expected = {"product": ProductCfg, "face": FaceCfg}.get(kind)
    if expected is None:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(cfg, expected):
        raise TypeError(f"a {kind} model takes a {expected.__name__}, got {type(cfg).__name__}")

    def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
        _ENTRIES[(kind, name)] = ModelEntry(name, kind, factory, cfg)
        return factory

    return wrap


def register_fallback(kind: str) -> Callable:
    """Decorator: `factory(name, cfg, weights=None)` builds the `kind` models no entry names (timm's other names)."""

    def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
        _FALLBACKS[kind] = factory
        return factory

    return wrap


def fallback(kind: str) -> Callable[..., Any] | None:
    """The factory of `kind`'s unregistered names, if its modules give one."""
    _load_model_modules()
    return _FALLBACKS.get(kind)


def list_models(kind: str) -> list[str]:
    _load_model_modules()
    return sorted(name for k, name in _ENTRIES if k == kind)


def get_entry(kind: str, name: str) -> ModelEntry:
    _load_model_modules()
    try:
        return _ENTRIES[(kind, name)]
    except KeyError:
        known = ", ".join(list_models(kind))
        raise UnknownModelError(f"unknown {kind} model {name!r}; registered: {known}") from None
