"""Embeddings kept on disk by image content (sha256) and model config, for products and faces alike.

Rebuilding an unchanged catalog or re-running an evaluation only embeds photos it has not seen. One
SQLite file per (namespace, config) under `cache_dir()/<namespace>/`: the config (model, size, flip,
weights, pipeline version...) is hashed into the file name, so two configs never mix vectors. Each
row also keeps a small JSON record (a product photo's width and height, the detector that found a
face), so a cache hit needs no decoding at all. SQLite serialises writers, so processes sharing a
cache lose nothing.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.paths import cache_dir

Entry = tuple[np.ndarray, dict[str, Any]]  # (vector, record)
_CHUNK = 500  # digests per SELECT, under SQLite's host-parameter limit


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def config_key(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


class EmbeddingCache:
    """sha256 -> (float32 vector, record) for one embedder config; vectors of another width are ignored."""

    def __init__(self, namespace: str, config: dict[str, Any], dim: int) -> None:
        folder = cache_dir() / namespace
        folder.mkdir(parents=True, exist_ok=True)
        name = str(config.get("name", "model")).replace("/", "_")
        self.path = folder / f"{name}-{config_key(config)}.sqlite"
        self.dim = dim
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS vectors (sha256 TEXT PRIMARY KEY, record TEXT, vector BLOB)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def get_many(self, digests: Iterable[str]) -> dict[str, Entry]:
        """The entries already cached among `digests`."""
        wanted = list(dict.fromkeys(digests))
        found: dict[str, Entry] = {}
        with self._connect() as db:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                query = f"SELECT sha256, record, vector FROM vectors WHERE sha256 IN ({','.join('?' * len(chunk))})"
                for digest, record, blob in db.execute(query, chunk):
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.size == self.dim:
                        found[digest] = (vector, json.loads(record))
        return found

    def put_many(self, entries: dict[str, Entry]) -> None:
        rows = [(d, json.dumps(r), np.asarray(v, np.float32).tobytes()) for d, (v, r) in entries.items()]
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)
