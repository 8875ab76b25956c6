"""Face embeddings kept on disk by image content (sha256) and model, so re-running an evaluation
only embeds photos it has not seen. One .npz per model configuration under `cache_dir()`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.face_pipeline import PIPELINE_VERSION
from lookalike.paths import cache_dir

# cfg keys that change how a distance is read, not the embedding itself
_NOT_EMBEDDING = {"threshold", "sweep", "distance_max"}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _config_tag(model: str, cfg: dict[str, Any], weights: str | os.PathLike | None) -> str:
    key: dict[str, Any] = {k: v for k, v in cfg.items() if k not in _NOT_EMBEDDING}
    key["pipeline"] = PIPELINE_VERSION
    if weights is not None:
        stat = Path(weights).stat()
        key["weights"] = [str(Path(weights).resolve()), stat.st_size, stat.st_mtime_ns]
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{model}-{digest}"


class EmbeddingCache:
    """sha256 -> (embedding, detector that found the face); `save` merges with what is on disk and
    replaces the file atomically, so processes sharing a cache lose nothing."""

    def __init__(self, model: str, cfg: dict[str, Any], weights: str | os.PathLike | None = None) -> None:
        self.path = cache_dir() / "face_embeddings" / f"{_config_tag(model, cfg, weights)}.npz"
        self._entries = self._read()

    def _read(self) -> dict[str, tuple[np.ndarray, str]]:
        if not self.path.is_file():
            return {}
        with np.load(self.path) as data:
            rows = zip(data["keys"], data["vectors"], data["detectors"], strict=True)
            return {str(key): (vector, str(detector)) for key, vector, detector in rows}

    def __contains__(self, sha: str) -> bool:
        return sha in self._entries

    def get(self, sha: str) -> tuple[np.ndarray, str]:
        return self._entries[sha]

    def put(self, sha: str, vector: np.ndarray, detector: str) -> None:
        self._entries[sha] = (np.asarray(vector, dtype=np.float32), detector)

    def save(self) -> None:
        if not self._entries:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for key, entry in self._read().items():  # keep what another process saved meanwhile
            self._entries.setdefault(key, entry)
        keys = list(self._entries)
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            keys=np.array(keys),
            vectors=np.stack([self._entries[k][0] for k in keys]),
            detectors=np.array([self._entries[k][1] for k in keys]),
        )
        os.replace(tmp, self.path)
