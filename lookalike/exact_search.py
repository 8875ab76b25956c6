"""Exact nearest neighbours of unit vectors by brute force: the reference ANN results are measured against."""

from __future__ import annotations

import numpy as np

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
