"""The k nearest neighbours of every vector of a set among the others: the approximate neighbour graph that
face clustering reads (`lookalike.faces.people_cluster`), without an all-pairs matrix.

An inverted-file search done in bulk: the vectors are partitioned by a spherical k-means (about sqrt(n)
lists, fitted on a sample), each vector is filed in its nearest list, and every vector is compared with the
members of its `probes` nearest lists, one list at a time as a BLAS block (the vectors probing a list
against its members). Why not the vector stores' per-query search: on the 2 shared cores (under load) a store
search cost 3-5 ms on 20,000 x 512 synthetic vectors and a bare Annoy query 2 ms on 100,000 (16 trees), so
200-500 s for a whole graph of 100,000 faces; the blocks cost about 60 s there under load (23 CPU s), and
`graph_recall` measures what they miss.
"""

from __future__ import annotations

import numpy as np

from lookalike.vectors.neighbours import nearest

__all__ = ["DEFAULT_PROBES", "graph_recall", "knn_graph"]

#: Lists each vector is compared with. On the 5,197 LFW faces: recall@10 0.64 of all ten exact neighbours (most
#: are strangers, nearly as far as any other face) but 0.96 of those at cosine >= 0.32, the edges clustering
#: merges on; on 100,000 (those faces and bench/ann.py's synthetic vectors) recall@10 0.64.
DEFAULT_PROBES = 8
_KMEANS_ROUNDS = 8
_SAMPLE_PER_LIST = 40
_CHUNK = 8192  # rows scored against the centroids at once


def _centroids(vectors: np.ndarray, lists: int, rng: np.random.Generator) -> np.ndarray:
    sample = vectors[rng.choice(len(vectors), min(len(vectors), lists * _SAMPLE_PER_LIST), replace=False)]
    centres = sample[rng.choice(len(sample), lists, replace=False)].copy()
    for _ in range(_KMEANS_ROUNDS):
        assign = np.argmax(sample @ centres.T, axis=1)
        sums = np.zeros_like(centres)
        for label, rows in _group(assign):
            sums[label] = sample[rows].sum(axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        filled = norms[:, 0] > 0
        centres[filled] = sums[filled] / norms[filled]  # an empty list keeps its centre
    return centres


def _probed(vectors: np.ndarray, centres: np.ndarray, probes: int) -> np.ndarray:
    """[n, probes] the nearest lists of each vector, nearest first."""
    out = np.empty((len(vectors), probes), np.int64)
    for start in range(0, len(vectors), _CHUNK):
        scores = vectors[start : start + _CHUNK] @ centres.T
        top = np.argpartition(-scores, probes - 1, axis=1)[:, :probes]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[start : start + _CHUNK] = np.take_along_axis(top, order, axis=1)
    return out


def knn_graph(
    vectors: np.ndarray, k: int, probes: int = DEFAULT_PROBES, lists: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(neighbours [n, k] int64, cosines [n, k] float32) of each unit vector among the others, most similar
    first; a row with fewer than k found is padded with -1 and cosine -inf.

    Args:
        vectors: [n, dim] unit vectors (float32).
        k: neighbours per vector.
        probes: lists each vector is compared with (more: higher recall, slower).
        lists: how many lists (default: about sqrt(n)).
        seed: the k-means sample's seed: the same vectors give the same graph.
    """
    vectors = np.ascontiguousarray(vectors, np.float32)
    n = len(vectors)
    best_ids = np.full((n, k), -1, np.int64)
    best = np.full((n, k), -np.inf, np.float32)
    if n < 2:
        return best_ids, best
    lists = max(1, min(lists or round(np.sqrt(n)), n))
    probes = min(probes, lists)
    centres = _centroids(vectors, lists, np.random.default_rng(seed))
    probed = _probed(vectors, centres, probes)
    home = probed[:, 0]
    members = [np.flatnonzero(home == i) for i in range(lists)]
    askers = [[] for _ in range(lists)]
    for column in range(probes):
        for list_no, rows in _group(probed[:, column]):
            askers[list_no].append(rows)
    for list_no in range(lists):
        inside = members[list_no]
        if not len(inside) or not askers[list_no]:
            continue
        queries = np.concatenate(askers[list_no])
        scores = vectors[queries] @ vectors[inside].T
        at = np.minimum(np.searchsorted(inside, queries), len(inside) - 1)
        own = np.flatnonzero(inside[at] == queries)
        scores[own, at[own]] = -np.inf  # not its own neighbour
        take = min(k, len(inside))
        top = np.argpartition(-scores, take - 1, axis=1)[:, :take] if take < len(inside) else \
            np.broadcast_to(np.arange(len(inside)), scores.shape)
        cand = np.concatenate([best[queries], np.take_along_axis(scores, top, axis=1)], axis=1)
        cand_ids = np.concatenate([best_ids[queries], inside[top]], axis=1)
        keep = np.argpartition(-cand, k - 1, axis=1)[:, :k]
        best[queries] = np.take_along_axis(cand, keep, axis=1)
        best_ids[queries] = np.take_along_axis(cand_ids, keep, axis=1)
    order = np.argsort(-best, axis=1, kind="stable")
    best, best_ids = np.take_along_axis(best, order, axis=1), np.take_along_axis(best_ids, order, axis=1)
    best_ids[~np.isfinite(best)] = -1
    return best_ids, best


def _group(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(label, rows with that label) for each label present."""
    order = np.argsort(labels, kind="stable")
    values, starts = np.unique(labels[order], return_index=True)
    return list(zip(values.tolist(), np.split(order, starts[1:]), strict=True))


def graph_recall(vectors: np.ndarray, neighbours: np.ndarray, sample: int = 500, seed: int = 0,
                 min_cosine: float | None = None) -> float:
    """Share of the exact k nearest neighbours (others, by brute force) that `neighbours` holds, over a sample;
    with `min_cosine`, of those exact neighbours at least that similar (the edges a clustering can merge on)."""
    n, k = neighbours.shape
    rows = np.random.default_rng(seed).choice(n, min(sample, n), replace=False)
    cosines, exact = nearest(vectors, vectors[rows], k + 1)
    hits = wanted = 0
    for i, r in enumerate(rows):
        keep = exact[i] != r
        truth = exact[i][keep][:k]
        if min_cosine is not None:
            truth = truth[cosines[i][keep][:k] >= min_cosine]
        hits += len(set(truth.tolist()) & set(neighbours[r].tolist()))
        wanted += len(truth)
    return float(hits / wanted) if wanted else 1.0
