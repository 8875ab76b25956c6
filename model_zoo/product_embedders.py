"""Product embedders: an ImageNet backbone's pooled penultimate features, L2-normalised (`ProductEmbedder`),
and `create_embedder`, which builds a registered one (`model_zoo.product_models`) or any timm model.

With `flip=True` each image is embedded together with its mirror image and the two features averaged:
a product and its mirror are the same product.

A registered model whose onnxruntime export was made and checked before runs from it without importing timm
or torch (the network is built on first need: the torch path, an export, fine-tuning): that import was most of
the app's start (issue 37; docs/benchmarks.md, "The app's start").
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model_zoo.cache import cache_dir
from model_zoo.onnx_runtime import OnnxSession, checked_product_export
from model_zoo.product_preprocess import Pixels, Preprocess
from model_zoo.registry import (
    DEFAULT_PRODUCT_MODEL,
    ProductCfg,
    UnknownModelError,
    Weights,
    WeightsUnavailableError,
    fallback,
    get_entry,
    list_models,
)
from model_zoo.weights import fingerprint

if TYPE_CHECKING:
    from torch import nn

__all__ = ["DEFAULT_PRODUCT_MODEL", "ProductEmbedder", "create_embedder", "list_product_models"]
#: Photos per network call: onnxruntime was fastest at a batch of 32 rows (eager torch slows as the batch
#: grows), so 16 (32 rows with the mirror images); docs/experiments/product-embedder.md.
DEFAULT_BATCH = 16
GPU_BATCH = 64
#: Whether a query photo is embedded with its mirror image too. Off: on held-out queries of the default build
#: the catalog's mirror-averaged vectors found the same items from the photo alone (exact-product recall@1 and
#: category top-1 within noise) for half the query's network time (issue 37; docs/benchmarks.md, "Stage times").
QUERY_MIRROR = False
#: Whether a query photo runs through an INT8 twin of the onnxruntime network (`model_zoo.int8`), calibrated on
#: photos of the catalog searched (`for_queries`): the network 2-2.6x faster a photo and the whole query 0.83-0.87
#: of its time; on held-out half-split queries quality within noise, but on GroceryStore val (frozen build) P@10
#: -0.020 +- 0.009 paired, and the twin costs ~11 CPU s the first time a catalog is searched (a first demo search,
#: the first start after each build). So off by default (issue 37; docs/experiments/query-speed.md).
QUERY_INT8 = False
BACKENDS = ("auto", "onnx", "torch")
_threads_lock = threading.Lock()
_threads_set = False


def _set_threads() -> None:
    """Use every core once for all models (LOOKALIKE_THREADS overrides); done once per process, when torch is
    first needed."""
    global _threads_set
    import torch

    with _threads_lock:
        if not _threads_set:
            torch.set_num_threads(int(os.environ.get("LOOKALIKE_THREADS", os.cpu_count() or 1)))
            _threads_set = True


class ProductEmbedder:
    """A frozen backbone in eval mode; `embed` and `classify` are safe to call from several threads.

    Photos come decoded (RGB PIL images or uint8 HxWx3 arrays: the caller reads files, with
    `lookalike.images.loading.load_image(path, draft=preprocess.draft)`) and become vectors in two steps, so a
    catalog build can overlap them: `prepare` (resize, normalise: numpy, thread-safe, run in decoding threads)
    and `embed_prepared` (the network). The network runs in onnxruntime when its export matches torch on a
    probe (`backend="auto"`, the default, or LOOKALIKE_BACKEND), else in torch through a copy with its batch
    norms folded. `model` is the network or what builds it (called once, on first need).
    """

    def __init__(
        self,
        name: str,
        model: nn.Module | Callable[[], nn.Module],
        preprocess: Preprocess,
        flip: bool,
        weights: str | None = None,
        backend: str | None = None,
        device: str | None = None,
    ) -> None:
        self.name, self.preprocess, self.flip, self.weights = name, preprocess, flip, weights
        self._model, self._build = (None, model) if _is_factory(model) else (model.eval(), None)
        self.int8 = False  # a query twin on the INT8 network (`for_queries`)
        self._query_twin: ProductEmbedder | None = None
        self._folded: nn.Module | None = None
        self._fold_lock = threading.Lock()
        self.device = device or ("cuda" if _gpu_seen() else "cpu")
        on_gpu = self.device != "cpu"
        self.batch_size = GPU_BATCH if on_gpu else DEFAULT_BATCH
        # a GPU runs the network in torch; onnxruntime is the CPU's fast path
        self._onnx = None if on_gpu else self._onnx_twin(backend or os.environ.get("LOOKALIKE_BACKEND", "auto"))
        self.backend = "onnxruntime" if self._onnx is not None else "torch"
        if self._onnx is None:
            self.model  # noqa: B018  (torch runs it: built now, so a bad weights file fails here, not mid-request)

    @property
    def model(self) -> nn.Module:
        """The torch network, in eval mode, built on first use from the factory given."""
        with self._fold_lock:
            if self._model is None:
                _set_threads()
                self._model = self._build().eval()
            return self._model

    @property
    def dim(self) -> int:
        """The vectors' width: the export's output, else the network's pre-logits width (wider than num_features
        where a head adds a hidden layer: MobileNetV3's 1280 against 960)."""
        if self._onnx is not None and isinstance(self._onnx.output_shape[-1], int):
            return self._onnx.output_shape[-1]
        return getattr(self.model, "head_hidden_size", None) or self.model.num_features

    @property
    def _net(self) -> nn.Module:
        """`model` with its norms folded, on the device: what the torch path and the export run (`model` stays as
        loaded: fine-tuning copies it). Made on first use: a start whose export was checked before never needs it."""
        import torch

        from model_zoo.batchnorm_folding import fold_batchnorm

        model = self.model
        with self._fold_lock:
            if self._folded is None:
                size = self.preprocess.size
                probe = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
                self._folded = fold_batchnorm(model, probe).to(self.device)
            return self._folded

    def _onnx_twin(self, backend: str) -> OnnxSession | None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "torch":
            return None
        key, folder = fingerprint(self.config), cache_dir() / "onnx"  # a checkpoint rewritten in place: a new export
        session = checked_product_export(key, self.preprocess.size, folder)
        if session is None:
            from model_zoo.onnx_export import export_product_network

            session = export_product_network(lambda: self._net, self.preprocess.size, key, folder)
        if session is None and backend == "onnx":
            raise WeightsUnavailableError(f"{self.name} cannot run in onnxruntime here (export failed or differs)")
        return session

    @property
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this exact embedder (recorded in an index's manifest); a query twin on the
        INT8 network says so (`int8`), so an evaluation's cached query vectors are its own."""
        config = {
            "name": self.name,
            "weights": self.weights,
            "size": self.preprocess.size,
            "flip": self.flip,
            "resize": self.preprocess.resize,
        }
        return {**config, "int8": True} if self.int8 else config

    def prepare(self, image: Pixels) -> np.ndarray:
        """float32 [3, size, size]: the decoded photo resized and normalised. Thread-safe; PIL releases the
        GIL while resizing."""
        return self.preprocess.array(image)

    def embed_prepared(self, pixels: np.ndarray) -> np.ndarray:
        """float32 [N, dim] unit vectors of prepared photos [N, 3, size, size] (one network call)."""
        return _unit_rows(self._features(pixels, self.flip), len(pixels), self.flip)

    @property
    def query_config(self) -> dict[str, Any]:
        """The config of the query side `embed_prepared_sides` gives: `for_queries()`'s without its INT8 twin."""
        return {**self.config, "flip": QUERY_MIRROR}

    def embed_prepared_sides(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`embed_prepared`'s rows, and the same photos as search embeds a query (with the mirror image only when
        QUERY_MIRROR says so), from the one network call: the build's fits query the catalog with the second
        (issue 38). The same array twice where both sides embed alike."""
        features = self._features(pixels, self.flip or QUERY_MIRROR)
        catalog = _unit_rows(features, len(pixels), self.flip)
        return catalog, catalog if self.flip == QUERY_MIRROR else _unit_rows(features, len(pixels), QUERY_MIRROR)

    def _features(self, pixels: np.ndarray, mirror: bool) -> np.ndarray:
        """float32 pooled features of the photos [N, dim], followed by their mirror images' when `mirror`."""
        if len(pixels) == 0:
            return np.zeros((0, self.dim), np.float32)
        batch = np.concatenate([pixels, pixels[..., ::-1]]) if mirror else pixels
        if self._onnx is not None:
            return self._onnx.run(batch)
        import torch

        from model_zoo.onnx_export import pre_logits

        with torch.inference_mode():
            pixels_in = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            return pre_logits(self._net)(pixels_in).float().cpu().numpy()

    def embed(self, images: Sequence[Pixels], batch_size: int | None = None) -> np.ndarray:
        """float32 [N, dim] unit vectors, one per decoded image, computed `batch_size` images at a time."""
        step = batch_size or self.batch_size
        out = [
            self.embed_prepared(np.stack([self.prepare(image) for image in images[start : start + step]]))
            for start in range(0, len(images), step)
        ]
        return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros((0, self.dim), np.float32)

    def for_queries(self, calibration: Callable[[], Sequence[Pixels]] | None = None) -> ProductEmbedder:
        """This embedder as search embeds a query photo: the same network, with the mirror image only when
        QUERY_MIRROR says so (the catalog's vectors keep theirs), and with QUERY_INT8 on an INT8 twin of the
        onnxruntime network calibrated on the photos `calibration()` gives (catalog photos: made once, cached).
        The first twin made with `calibration` is kept: later calls (an evaluation's) get the same one. Its
        `config` says which, so an evaluation's cached query vectors are its own."""
        with self._fold_lock:
            if self._query_twin is not None:
                return self._query_twin
        twin = self
        if self.flip != QUERY_MIRROR:
            twin = copy.copy(self)
            twin.flip = QUERY_MIRROR
        if calibration is None:
            return twin
        session = self._int8_session(calibration) if QUERY_INT8 and self._onnx is not None else None
        if session is not None:
            twin = copy.copy(twin)
            twin._onnx, twin.int8, twin._query_twin = session, True, None
        with self._fold_lock:
            self._query_twin = self._query_twin or twin
            return self._query_twin

    def _int8_session(self, calibration: Callable[[], Sequence[Pixels]]) -> OnnxSession | None:
        from model_zoo.int8 import quantize

        assert self._onnx is not None
        pixels = np.stack([self.prepare(photo) for photo in calibration()])
        if len(pixels) == 0:
            return None
        path = quantize(self._onnx.path, pixels, cache_dir() / "onnx", self._onnx.run,
                        lambda file, rows: OnnxSession(file, "an INT8 twin").run(rows))
        return None if path is None else OnnxSession(path, f"the INT8 twin of {self.name}")

    def classify(self, images: Sequence[Pixels]) -> np.ndarray:
        """float32 [N, classes] logits of the backbone's own (ImageNet) classifier."""
        import torch

        pixels = np.stack([self.prepare(image) for image in images])
        with torch.inference_mode():
            return self._net(torch.from_numpy(pixels).to(self.device)).float().cpu().numpy()


def _unit_rows(features: np.ndarray, count: int, with_mirror: bool) -> np.ndarray:
    """The photos' unit vectors from `_features`: each photo's, or its and its mirror image's summed."""
    rows = features[:count] + features[count : 2 * count] if with_mirror else features[:count]
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def _is_factory(model: Any) -> bool:
    """Whether `model` is what builds a network rather than one (an nn.Module is callable too)."""
    return callable(model) and not hasattr(model, "state_dict")


def _gpu_seen() -> bool:
    """Whether torch sees a GPU; on a machine with no GPU device files, answered without importing torch."""
    if not any(Path(device).exists() for device in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")):
        return False
    import torch

    return torch.cuda.is_available()


def create_embedder(
    name: str = DEFAULT_PRODUCT_MODEL,
    weights: Weights = None,
    *,
    size: int | None = None,
    flip: bool | None = None,
    resize: str | None = None,
    backend: str | None = None,
    device: str | None = None,
) -> ProductEmbedder:
    """A ready product embedder, timm's `create_model` style.

    Args:
        name: a registered name (`list_product_models()`: the EfficientNet-Lite models work offline)
            or any timm model name, whose hub weights timm fetches when it can.
        weights: a checkpoint to load instead of the default weights.
        size, flip, resize: override the registered config (input side, mirror averaging, squash/crop).
        backend: "auto" (onnxruntime when its export matches torch, else torch), "onnx" or "torch";
            default LOOKALIKE_BACKEND or "auto". The vectors agree to cosine 0.9999 either way.
        device: "cpu" or "cuda" (torch on the GPU, batches of GPU_BATCH); default: a GPU when torch sees one.

    Returns:
        A `ProductEmbedder` whose `embed(images)` gives float32 [N, dim] unit vectors of decoded photos
        (RGB PIL images or uint8 HxWx3 arrays).

    Raises:
        UnknownModelError: `name` is neither registered nor a timm model.
        WeightsUnavailableError: the weights cannot be found or read here (one-line reason).

    Example:
        >>> from lookalike.images.loading import load_image
        >>> embedder = create_embedder("efficientnet_lite1")
        >>> embedder.embed([load_image("shoe.jpg")]).shape
        (1, 1280)
    """
    overrides = {"size": size, "flip": flip, "resize": resize, "backend": backend, "device": device}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if name in list_models("product"):
        entry = get_entry("product", name)
        return entry.factory(name, entry.cfg.replace(**overrides), weights)
    factory = fallback("product")  # any timm name (`product_models`)
    if factory is None:
        raise UnknownModelError(f"unknown product model {name!r}; registered: {', '.join(list_models('product'))}")
    return factory(name, ProductCfg(**overrides), weights)


def list_product_models() -> list[str]:
    return list_models("product")
