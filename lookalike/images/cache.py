"""Embeddings kept on disk by image content (sha256) and model config, for products and faces alike.

Rebuilding an unchanged catalog or re-running an evaluation only embeds photos it has not seen. One
SQLite file per (namespace, config) under `cache_dir()/<namespace>/`: the config (model, size, flip,
weights, pipeline version...) is hashed into the file name, so two configs never mix vectors. Each
row also keeps a small JSON record (a product photo's width and height, the detector that found a
face), so a cache hit needs no decoding at all. SQLite serialises writers, so processes sharing a
cache lose nothing.

The cache only saves time, so it never fails a build: a file SQLite finds damaged (truncated, garbled) is set
aside as `<name>.damaged-<time>` with a warning and a fresh one started, and a disk that refuses its writes
(full, read-only) leaves the run without a cache, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.paths import cache_dir

Entry = tuple[np.ndarray, dict[str, Any]]  # (vector, record)
_CHUNK = 500  # digests per SELECT, under SQLite's host-parameter limit
log = logging.getLogger(__name__)
#: SQLite's result codes for a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB) and for a disk refusing writes
#: (SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PERM).
_DAMAGED_CODES = {11, 26}
_REFUSED_CODES = {8, 10, 13, 14, 3}
_JOURNALS = ("-journal", "-wal", "-shm")


def _code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code of an error (Python 3.11+), else guessed from its message."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF
    text = str(exc).lower()
    return 11 if "malformed" in text else 26 if "not a database" in text else 13 if "full" in text else None


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def config_key(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


class EmbeddingCache:
    """sha256 -> (float32 vector, record) for one embedder config; vectors of another width are ignored."""

    def __init__(self, namespace: str, config: dict[str, Any], dim: int) -> None:
        folder = cache_dir() / namespace
        name = str(config.get("name", "model")).replace("/", "_")
        self.path = folder / f"{name}-{config_key(config)}.sqlite"
        self.dim = dim
        self.disabled = False  # the disk refused the cache: this run goes without one
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._disable(exc)
            return
        self._run(self._create, None)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection committed on success and closed either way (a damaged file is then free to move)."""
        db = sqlite3.connect(self.path, timeout=60)
        try:
            with db:
                yield db
        finally:
            db.close()

    def _create(self) -> None:
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS vectors (sha256 TEXT PRIMARY KEY, record TEXT, vector BLOB)")

    def _run(self, work: Callable[[], Any], fallback: Any) -> Any:
        """`work()` on the cache file; a damaged file is set aside and `work` run once more on a fresh one,
        a disk refusing writes disables the cache; either way the caller gets `fallback` rather than an error."""
        for attempt in range(2):
            if self.disabled:
                return fallback
            try:
                return work()
            except sqlite3.DatabaseError as exc:
                code = _code(exc)
                if code in _DAMAGED_CODES and attempt == 0:
                    self._set_aside(exc)
                    continue
                if code in _REFUSED_CODES or code in _DAMAGED_CODES:
                    self._disable(exc)
                    return fallback
                if isinstance(exc, sqlite3.OperationalError):  # busy past the timeout: skip this once
                    log.warning("the embedding cache %s is busy (%s): going on without it this time", self.path, exc)
                    return fallback
                raise
        return fallback

    def _set_aside(self, exc: Exception) -> None:
        """Move the damaged file (and its journals, which must not be replayed into a fresh file) aside."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        log.warning("the embedding cache %s is damaged (%s): moved to %s, starting a fresh one (photos are "
                    "embedded again)", self.path, exc, aside.name)
        for suffix in ("", *_JOURNALS):
            try:
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
            except FileNotFoundError:
                continue
            except OSError as move_error:
                self._disable(move_error)
                return
        try:
            self._create()
        except sqlite3.Error as create_error:
            self._disable(create_error)

    def _disable(self, exc: Exception) -> None:
        if not self.disabled:
            log.warning("the embedding cache %s cannot be used (%s): going on without it", self.path, exc)
        self.disabled = True

    def get_many(self, digests: Iterable[str]) -> dict[str, Entry]:
        """The entries already cached among `digests` (none when the cache cannot be read)."""
        wanted = list(dict.fromkeys(digests))

        def read() -> dict[str, Entry]:
            found: dict[str, Entry] = {}
            with self._connect() as db:
                for start in range(0, len(wanted), _CHUNK):
                    chunk = wanted[start : start + _CHUNK]
                    query = f"SELECT sha256, record, vector FROM vectors WHERE sha256 IN ({','.join('?' * len(chunk))})"
                    for digest, record, blob in db.execute(query, chunk):
                        try:  # a row SQLite returns but that does not decode is a miss, embedded again
                            vector = np.frombuffer(blob, dtype=np.float32)
                            entry = (vector, json.loads(record))
                        except (TypeError, ValueError):
                            continue
                        if vector.size == self.dim:
                            found[digest] = entry
            return found

        return self._run(read, {})

    def put_many(self, entries: dict[str, Entry]) -> None:
        rows = [(d, json.dumps(r), np.asarray(v, np.float32).tobytes()) for d, (v, r) in entries.items()]

        def write() -> None:
            with self._connect() as db:
                db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)

        self._run(write, None)
