"""The seed project's search, kept only to measure against: per query, read every stored vector from
SQLite and rank the whole catalog by Euclidean distance.

The seed kept its embeddings in the database and scanned them on each request; we store them the
same way (one float32 BLOB per row) and do the arithmetic with numpy, which flatters the seed: its
cost here is the database read plus one vectorised distance computation.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np


def write_seed_db(vectors: np.ndarray, path: Path) -> Path:
    """One row per catalog item: id and its embedding as raw float32 bytes."""
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, embedding BLOB NOT NULL)")
        db.executemany(
            "INSERT INTO products (id, embedding) VALUES (?, ?)",
            ((i, np.asarray(v, np.float32).tobytes()) for i, v in enumerate(vectors)),
        )
    return path


def seed_search(db_path: Path, query: np.ndarray, k: int) -> list[int]:
    """Open the database, read all vectors, return the ids of the k nearest (Euclidean)."""
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT id, embedding FROM products").fetchall()
    ids = np.array([row[0] for row in rows])
    vectors = np.stack([np.frombuffer(row[1], dtype=np.float32) for row in rows])
    order = np.argsort(np.linalg.norm(vectors - query, axis=1), kind="stable")[:k]
    return ids[order].tolist()
