"""ONNX networks run by onnxruntime: the default face embedder (shipped as ONNX) and the product
embedders (exported from torch once, then cached), sharing one way of making sessions.

Why onnxruntime for the product embedders: on this project's 2-core CPU it runs EfficientNet-Lite1 at
240 px about 2x (batch 1) to 5x (batch 32) faster than eager torch, whose throughput falls as the batch
grows (`bench/build_throughput.py`). The export is checked against the torch network on a probe
(cosine >= EXPORT_MIN_COSINE) before it is used; one that does not match is discarded.

Sessions are made per process, on first use, with as many threads as torch is given there: a
session's thread pool does not survive a fork, and the app forks its face helpers from the loaded
server (`lookalike.faces.helpers`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model_zoo.registry import WeightsUnavailableError

EXPORT_MIN_COSINE = 0.9999
OPSET = 17


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest row-wise cosine between two [N, dim] arrays: how far an export strays at worst."""
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(((a * b).sum(1) / norms).min())


class OnnxSession:
    """One ONNX file; `run(batch)` from any thread or forked process. A bad file fails at construction."""

    def __init__(self, path: Path, label: str) -> None:
        self.path, self.label = Path(path), label
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()
        probe = self._session(threads=1)  # read the file now, so a bad one fails here, in one line
        self.input_name: str = probe.get_inputs()[0].name
        self.input_shape: list = list(probe.get_inputs()[0].shape)
        self._sessions.clear()  # made again where it runs, with that process's thread count

    def _session(self, threads: int | None = None) -> Any:
        import onnxruntime

        with self._lock:
            if os.getpid() not in self._sessions:
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = threads or torch.get_num_threads()
                options.inter_op_num_threads = 1
                options.log_severity_level = 3  # files that declare batch 1 run larger batches fine, but warn
                try:
                    self._sessions[os.getpid()] = onnxruntime.InferenceSession(
                        str(self.path), options, providers=["CPUExecutionProvider"]
                    )
                except Exception as exc:  # onnxruntime raises its own types for a bad file
                    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise WeightsUnavailableError(f"cannot load {self.label} from {self.path}: {message}") from None
            return self._sessions[os.getpid()]

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._session().run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})[0]


class _PreLogits(nn.Module):
    """A timm network's pooled pre-logits features: what the product embedders return."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)


def pre_logits(net: nn.Module) -> nn.Module:
    return _PreLogits(net).eval()


def export_product_network(net: nn.Module, size: int, config: dict[str, Any], folder: Path) -> OnnxSession | None:
    """The ONNX twin of `net`'s pre-logits features at `size` px, exported once into `folder` (keyed by
    the embedder's config and the torch version) and checked on a probe; None when it cannot be made
    or does not match, so the caller keeps torch."""
    key = json.dumps({**config, "torch": torch.__version__, "opset": OPSET}, sort_keys=True, default=str)
    name = str(config.get("name", "model")).replace("/", "_")
    path = folder / f"{name}-{size}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"
    module = pre_logits(net)
    if not path.is_file():
        try:
            import onnx  # noqa: F401  (the exporter needs it; without it we stay on torch)
        except ImportError:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            torch.onnx.export(
                module, torch.zeros(2, 3, size, size), str(tmp), input_names=["pixels"], output_names=["features"],
                dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}}, opset_version=OPSET, dynamo=False,
            )
            os.replace(tmp, path)  # a concurrent or interrupted export never leaves a half file in place
        except Exception:  # any exporter failure: this model simply stays on torch
            tmp.unlink(missing_ok=True)
            return None
    session = OnnxSession(path, f"the ONNX export of {name}")
    probe = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = module(probe).numpy()
    found = session.run(probe.numpy())
    if found.shape != expected.shape or min_cosine(expected, found) < EXPORT_MIN_COSINE:
        path.unlink(missing_ok=True)
        return None
    return session
