"""Faces grouped into people: agglomerative clustering on the sparse neighbour graph of their embeddings,
under the corrections a user made.

    vectors -> k nearest neighbours of each face (`lookalike.vectors.knn_graph`, no all-pairs matrix)
            -> clusters merged best pair first while their linkage is at or above the threshold

The linkage of two clusters is their average linkage, computed exactly: the mean cosine over every pair of
their faces, which is the dot product of the clusters' vector sums over the product of their sizes. The graph
only says which clusters to compare. The mean over the graph's own edges, which an earlier version used, grows
optimistic as clusters grow (the graph keeps only each face's nearest, so the edges it knows between two
clusters are their closest pairs) and merged more different people in the whole collection than in the part it
was chosen on; single linkage (connected components of the threshold graph) chains people together. Measured on
LFW identity sets 1-2 (docs/experiments/people_clustering.md). The corrections are constraints the merging respects:

- `owner`: faces pinned to a person (named, merged, moved, split by the user) start in one cluster per
  person, and two clusters pinned to different people never merge;
- `forbidden`: a face that is "not this person" never joins the cluster pinned to that person;
- `frozen`: an update's existing people start as clusters that never merge with one another, so a person
  keeps every face it had; new faces join them or form new clusters.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from lookalike.vectors.knn_graph import knn_graph

__all__ = ["DEFAULT_K", "DEFAULT_THRESHOLD", "LINKAGES", "Constraints", "agglomerate", "cluster", "edges_of"]

#: Neighbours per face in the graph.
DEFAULT_K = 10
#: Mean cosine over all pairs at or above which two clusters merge (arcface_mobilefacenet; chosen on LFW
#: sets 1-2).
DEFAULT_THRESHOLD = 0.32
LINKAGES = ("average", "single")


@dataclass
class Constraints:
    """Per face row: the person it is pinned to, the people it must never join, the cluster it starts in."""

    owner: dict[int, int] = field(default_factory=dict)  # row -> person id
    forbidden: dict[int, set[int]] = field(default_factory=dict)  # row -> person ids
    frozen: dict[int, int] = field(default_factory=dict)  # row -> existing person id (an update)


def edges_of(neighbours: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The graph's undirected edges (heads < tails, each once) from neighbour lists padded with -1; `rows`: the
    row each list is of."""
    n, k = neighbours.shape
    src, dst = np.repeat(np.arange(n) if rows is None else rows, k), neighbours.ravel()
    keep = dst >= 0
    src, dst = src[keep], dst[keep]
    low, high = np.minimum(src, dst), np.maximum(src, dst)
    keys = low.astype(np.int64) * (int(max(high.max(initial=0), low.max(initial=0))) + 1) + high
    _, first = np.unique(keys, return_index=True)
    return low[first], high[first]


def agglomerate(
    units: np.ndarray, heads: np.ndarray, tails: np.ndarray, threshold: float,
    constraints: Constraints | None = None, linkage: str = "average",
) -> np.ndarray:
    """A cluster number per row of `units` (0..m-1, in order of first row): clusters joined by a graph edge
    (heads[e], tails[e]) merged best linkage first while it is at least `threshold`, under `constraints`.

    Average linkage is exact: the mean cosine over all pairs of faces of the two clusters, the dot product of
    their vector sums over the product of their sizes; the graph only says which clusters to compare."""
    if linkage not in LINKAGES:
        raise ValueError(f"unknown linkage {linkage!r}; use one of {', '.join(LINKAGES)}")
    n, c = len(units), constraints or Constraints()
    start = np.arange(n)
    seeds: dict[tuple[str, int], int] = {}
    for row, person in list(c.frozen.items()) + list(c.owner.items()):  # one starting cluster per person
        key = ("frozen" if row in c.frozen else "owner", person)
        start[row] = seeds.setdefault(key, row)
    owner = {int(start[r]): p for r, p in c.owner.items()}
    owner.update({int(start[r]): p for r, p in c.frozen.items()})
    frozen = {int(start[r]) for r in c.frozen}
    forbidden: dict[int, set[int]] = {}
    for row, people in c.forbidden.items():
        forbidden.setdefault(int(start[row]), set()).update(people)
    size = np.bincount(start, minlength=n).astype(np.float64)
    order = np.argsort(start, kind="stable")
    firsts = np.flatnonzero(np.r_[True, np.diff(start[order]) != 0])
    sums = np.zeros((n, units.shape[1]), np.float64)  # a cluster's vector sum, at its number
    sums[start[order][firsts]] = np.add.reduceat(units[order].astype(np.float64), firsts) if n else 0
    parent = list(range(n))
    nbr: list[dict[int, float] | None] = [{} for _ in range(n)]  # cluster -> {neighbour cluster: linkage}
    a_side, b_side = start[heads], start[tails]
    apart = a_side != b_side
    a_side, b_side = a_side[apart], b_side[apart]
    links = (_rowwise(sums, a_side, b_side) / (size[a_side] * size[b_side]) if linkage == "average"
             else _rowwise(units, heads[apart], tails[apart]))
    for a, b, s in zip(a_side.tolist(), b_side.tolist(), links.tolist(), strict=True):
        nbr[a][b] = nbr[b][a] = max(nbr[a].get(b, -np.inf), s)  # single: the best edge; average: all equal
    # a pair under the threshold is left out: its linkage changes only when a side merges, which pushes it anew
    heap = [(-s, a, b) for a in range(n) if nbr[a] for b, s in nbr[a].items() if a < b and s >= threshold]
    heapq.heapify(heap)
    while heap:
        negative, a, b = heapq.heappop(heap)
        if -negative < threshold:
            break
        if nbr[a] is None or nbr[b] is None or nbr[a].get(b) != -negative:
            continue  # stale: a side merged away, or the pair's linkage changed since
        oa, ob = owner.get(a), owner.get(b)
        if ((a in frozen and b in frozen) or (oa is not None and ob is not None and oa != ob)
                or (oa is not None and oa in forbidden.get(b, ())) or (ob is not None and ob in forbidden.get(a, ()))):
            del nbr[a][b], nbr[b][a]  # a pair that may never merge
            continue
        keep, gone = (a, b) if size[a] >= size[b] else (b, a)
        size[keep] += size[gone]
        sums[keep] += sums[gone]
        kept, moved = nbr[keep], nbr[gone]
        del kept[gone]
        for other, s in moved.items():
            if other != keep:
                del nbr[other][gone]
                kept[other] = nbr[other][keep] = max(kept.get(other, -np.inf), s)  # single linkage's rule
        if linkage == "average":
            _relink(nbr, sums, size, keep)
        for other, s in kept.items():
            if s >= threshold:
                heapq.heappush(heap, (-s, min(keep, other), max(keep, other)))
        nbr[gone] = None
        parent[gone] = keep
        if gone in owner:
            owner.setdefault(keep, owner[gone])
        if gone in forbidden:
            forbidden.setdefault(keep, set()).update(forbidden.pop(gone))
        if gone in frozen:
            frozen.add(keep)
    roots = np.array([_root(parent, r) for r in start.tolist()])
    _, labels = np.unique(roots, return_inverse=True)
    first = np.full(labels.max() + 1 if n else 0, n, np.int64)
    np.minimum.at(first, labels, np.arange(n))
    return np.argsort(np.argsort(first, kind="stable"), kind="stable")[labels]


def _rowwise(vectors: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """vectors[a[i]] . vectors[b[i]] for each i, a block at a time (a million edges at once would be 4 GB)."""
    out = np.empty(len(a), np.float64)
    for i in range(0, len(a), chunk):
        out[i : i + chunk] = np.einsum("ij,ij->i", vectors[a[i : i + chunk]], vectors[b[i : i + chunk]])
    return out


def _relink(nbr: list[dict[int, float] | None], sums: np.ndarray, size: np.ndarray, a: int) -> None:
    """Set cluster `a`'s average linkage to each of its graph neighbours, from the clusters' vector sums."""
    others = np.fromiter(nbr[a], np.int64, len(nbr[a]))
    for other, s in zip(others.tolist(), ((sums[others] @ sums[a]) / (size[others] * size[a])).tolist(), strict=True):
        nbr[a][other] = nbr[other][a] = s


def _root(parent: list[int], row: int) -> int:
    path = []
    while parent[row] != row:
        path.append(row)
        row = parent[row]
    for step in path:
        parent[step] = row
    return row


def cluster(
    vectors: np.ndarray, threshold: float = DEFAULT_THRESHOLD, k: int = DEFAULT_K,
    constraints: Constraints | None = None, linkage: str = "average",
) -> np.ndarray:
    """A cluster number per unit vector: `agglomerate` over their k-nearest-neighbour graph."""
    heads, tails = edges_of(knn_graph(vectors, k)[0])
    return agglomerate(vectors, heads, tails, threshold, constraints, linkage)
