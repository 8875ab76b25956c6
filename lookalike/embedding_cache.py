"""Embeddings cached by (file sha256, embedder config), so rebuilding an unchanged catalog is fast.

Each entry also keeps the photo's width and height, so a cache hit needs no decoding at all.
One SQLite file per embedder config under `cache_dir()/product_embeddings/`: the config (model,
size, flip, resize, weights) is hashed into the file name, so two configs never mix vectors.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lookalike.paths import cache_dir


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class EmbeddingCache:
    def __init__(self, config: dict, dim: int) -> None:
        key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
        folder = cache_dir() / "product_embeddings"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{config.get('name', 'model').replace('/', '_')}-{key}.sqlite"
        self.dim = dim
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS vectors "
                "(sha256 TEXT PRIMARY KEY, width INTEGER, height INTEGER, vector BLOB NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get_many(self, digests: Iterable[str]) -> dict[str, tuple[np.ndarray, int, int]]:
        """{sha256: (vector, width, height)} for the digests already cached."""
        wanted = list(dict.fromkeys(digests))
        found: dict[str, tuple[np.ndarray, int, int]] = {}
        with self._connect() as db:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT sha256, width, height, vector FROM vectors WHERE sha256 IN ({marks})"
                for digest, width, height, blob in db.execute(query, chunk):
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.size == self.dim:
                        found[digest] = (vector, width, height)
        return found

    def put_many(self, entries: dict[str, tuple[np.ndarray, int, int]]) -> None:
        rows = [(d, w, h, np.asarray(v, np.float32).tobytes()) for d, (v, w, h) in entries.items()]
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)
