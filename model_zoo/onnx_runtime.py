"""ONNX networks run by onnxruntime: the default face embedder (shipped as ONNX), the product embedders
and MTCNN's three networks (exported from torch once by `model_zoo.onnx_export`, then cached), sharing one way
of making sessions. Nothing here imports torch: a start whose exports were checked before serves from them
without it (issue 37; `onnx_export` makes and checks them).

Why onnxruntime for the product embedders: on this project's 2-core CPU it runs EfficientNet-Lite1 at
240 px about 2x (batch 1) to 5x (batch 32) faster than eager torch, whose throughput falls as the batch
grows (`bench/build_throughput.py`). The export is checked against the torch network on a probe
(cosine >= EXPORT_MIN_COSINE) before it is used; one that does not match is discarded.

Sessions are made per process, on first use, with as many threads as torch is given there: a
session's thread pool does not survive a fork, and the app forks its face helpers from the loaded
server (`lookalike.faces.process_pool`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
import threading
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from model_zoo.registry import WeightsUnavailableError

EXPORT_MIN_COSINE = 0.9999
OPSET = 17


def thread_count() -> int:
    """The intra-op threads a session made now gets: torch's count where torch is loaded (a face helper sets it
    to 1), else LOOKALIKE_THREADS or every core, what `product_embedders` gives torch."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    return int(os.environ.get("LOOKALIKE_THREADS", os.cpu_count() or 1))


@cache
def torch_version() -> str:
    """The installed torch's version, read from its metadata without importing it: part of an export's key."""
    return importlib.metadata.version("torch")


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest row-wise cosine between two [N, dim] arrays: how far an export strays at worst."""
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(((a * b).sum(1) / norms).min())


class OnnxSession:
    """One ONNX file; `run(batch)` from any thread or forked process. A bad file fails at construction.
    `threads`: a fixed intra-op thread count (default: torch's in the running process)."""

    def __init__(self, path: Path, label: str, threads: int | None = None) -> None:
        self.path, self.label, self.threads = Path(path), label, threads
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()
        probe = self._session(threads=1)  # read the file now, so a bad one fails here, in one line
        self.input_name: str = probe.get_inputs()[0].name
        self.input_shape: list = list(probe.get_inputs()[0].shape)
        self.output_shape: list = list(probe.get_outputs()[0].shape)
        self._sessions.clear()  # made again where it runs, with that process's thread count

    def _session(self, threads: int | None = None) -> Any:
        import onnxruntime

        with self._lock:
            if os.getpid() not in self._sessions:
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = threads or self.threads or thread_count()
                options.inter_op_num_threads = 1
                # Idle threads sleep instead of spinning: spinning held the cores that OpenCV and BLAS wanted
                # right after, slowing search with re-ranking; sleeping costs builds a little throughput
                # (docs/experiments/inference-runtimes.md).
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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
        return self.run_all(batch)[0]

    def run_all(self, batch: np.ndarray) -> list[np.ndarray]:
        """Every output of the network, in its order."""
        return self._session().run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})


def export_path(name: str, key: dict[str, Any], folder: Path) -> Path:
    """Where `onnx_export.onnx_twin` keeps the export of `name` for `key` (and the torch version and opset)."""
    digest = hashlib.sha256(
        json.dumps({**key, "torch": torch_version(), "opset": OPSET}, sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    return folder / f"{name.replace('/', '_')}-{key.get('size', 'any')}-{digest}.onnx"


def checked_product_export(config: dict[str, Any], size: int, folder: Path) -> OnnxSession | None:
    """The export of the product network `config` names at `size` px, when an earlier run made and checked it
    (`onnx_export.export_product_network`): found without torch. None otherwise."""
    name = str(config.get("name", "model"))
    return verified_export(export_path(name, {**config, "size": size}, folder), name)


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size} {stat.st_mtime_ns}"


def mark_verified(path: Path) -> None:
    """Record that this very file (its size and modification time) matched torch on the probe."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.verified.tmp")
    try:
        tmp.write_text(_stamp(path))
        os.replace(tmp, _marker(path))
    except OSError:  # a read-only cache: the next start checks the export again, as before
        tmp.unlink(missing_ok=True)


def verified_export(path: Path, name: str, threads: int | None = None) -> OnnxSession | None:
    """The export at `path` when an earlier run checked it against torch and the file is unchanged since, so a
    start-up neither runs the torch network on the probe nor (for a product embedder) folds its norms again:
    that check was a fifth of the app's start (docs/benchmarks.md, "Stage times"). None otherwise."""
    try:
        if _marker(path).read_text() != _stamp(path):
            return None
    except OSError:
        return None
    try:
        return OnnxSession(path, f"the ONNX export of {name}", threads)
    except WeightsUnavailableError:  # damaged since: made and checked again
        path.unlink(missing_ok=True)
        return None
