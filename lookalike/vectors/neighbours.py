"""Nearest neighbours of unit vectors: exact by brute force (the reference), and Annoy's approximate ones
re-ranked exactly. Search, the build's effort tuning and the benchmarks all use these.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

METRIC = "angular"  # Annoy's angular distance on unit vectors is their Euclidean distance

_CHUNK = 16  # queries per block: bounds the score matrix at 16 x catalog floats, whatever the catalog size


def nearest(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cosines [N, k], indices into `base` [N, k]), most similar first."""
    queries = np.atleast_2d(queries)
    k = min(k, base.shape[0])
    scores_out, ids_out = [], []
    for start in range(0, len(queries), _CHUNK):
        scores = queries[start : start + _CHUNK] @ base.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        scores_out.append(np.take_along_axis(scores, top, axis=1))
        ids_out.append(top)
    return np.concatenate(scores_out), np.concatenate(ids_out)


def recall_of(found: Sequence[int], exact: Sequence[int]) -> float:
    """Share of the exact neighbours that an approximate search found."""
    return len(set(found) & set(exact)) / len(exact) if len(exact) else 1.0


def mean_recall(found: Sequence[Sequence[int]], exact: np.ndarray) -> float:
    """`recall_of` averaged over queries, each cut to its exact list's length."""
    k = exact.shape[1]
    return float(np.mean([recall_of(list(f)[:k], e) for f, e in zip(found, exact, strict=True)]))


def new_annoy(vectors: np.ndarray, ids: np.ndarray, trees: int, n_jobs: int = 1) -> AnnoyIndex:
    """An in-memory Annoy index of `vectors[ids]` under their ids; seeded and, with one job, built the
    same way every time, so a rebuild is identical."""
    index = AnnoyIndex(vectors.shape[1], METRIC)
    index.set_seed(0)
    for item_id in ids:
        index.add_item(int(item_id), vectors[item_id])
    index.build(trees, n_jobs=n_jobs)
    return index


def annoy_top_k(
    index: AnnoyIndex, vectors: np.ndarray, query: np.ndarray, top_k: int, candidates: int, search_k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, cosines) of the top_k of the `candidates` Annoy proposes, re-scored exactly against `vectors`:
    ANN error can then only drop items, never misorder them."""
    found = np.asarray(index.get_nns_by_vector(query.tolist(), candidates, search_k=search_k), dtype=np.int64)
    cosine = vectors[found].astype(np.float32) @ query if len(found) else np.zeros(0, np.float32)
    order = np.argsort(-cosine, kind="stable")[:top_k]
    return found[order], cosine[order]


def build_annoy(vectors: np.ndarray, ids: np.ndarray, trees: int, path: Path, n_jobs: int = 1) -> None:
    """`new_annoy` written to `path` (which search memory-maps)."""
    index = new_annoy(vectors, ids, trees, n_jobs)
    path.parent.mkdir(parents=True, exist_ok=True)
    index.save(str(path))
    index.unload()
