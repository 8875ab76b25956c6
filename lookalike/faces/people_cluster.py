"""Faces grouped into people: agglomerative clustering on the sparse neighbour graph of their embeddings,
under the corrections a user made.

    vectors -> k nearest neighbours of each face (`lookalike.vectors.knn_graph`, no all-pairs matrix)
            -> clusters merged best pair first while their linkage is at or above the threshold

The linkage of two clusters is the mean cosine of the graph edges between them (average linkage over the
edges the graph knows): chosen over single linkage (connected components of the threshold graph) by
measurement on LFW identity sets 1-2, where single linkage chains different people together
(docs/experiments/people_clustering.md). The corrections are constraints the merging respects:

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
#: Mean cosine at or above which two clusters merge (arcface_mobilefacenet; chosen on LFW sets 1-2).
DEFAULT_THRESHOLD = 0.32
LINKAGES = ("average", "single")


@dataclass
class Constraints:
    """Per face row: the person it is pinned to, the people it must never join, the cluster it starts in."""

    owner: dict[int, int] = field(default_factory=dict)  # row -> person id
    forbidden: dict[int, set[int]] = field(default_factory=dict)  # row -> person ids
    frozen: dict[int, int] = field(default_factory=dict)  # row -> existing person id (an update)


def edges_of(neighbours: np.ndarray, cosines: np.ndarray, rows: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The graph's undirected edges (i < j, each once) from neighbour lists; `rows`: the row each list is of."""
    n, k = neighbours.shape
    src = np.repeat(np.arange(n) if rows is None else rows, k)
    dst, sim = neighbours.ravel(), cosines.ravel()
    keep = dst >= 0
    src, dst, sim = src[keep], dst[keep], sim[keep]
    low, high = np.minimum(src, dst), np.maximum(src, dst)
    keys = low.astype(np.int64) * (int(max(high.max(initial=0), low.max(initial=0))) + 1) + high
    _, first = np.unique(keys, return_index=True)
    return low[first], high[first], sim[first].astype(np.float64)


def agglomerate(
    n: int, heads: np.ndarray, tails: np.ndarray, sims: np.ndarray, threshold: float,
    constraints: Constraints | None = None, linkage: str = "average",
) -> np.ndarray:
    """A cluster number per row (0..m-1, in order of first row): rows merged along the edges
    (heads[e], tails[e], sims[e]) best linkage first while it is at least `threshold`, under `constraints`."""
    if linkage not in LINKAGES:
        raise ValueError(f"unknown linkage {linkage!r}; use one of {', '.join(LINKAGES)}")
    c = constraints or Constraints()
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
    size = np.bincount(start, minlength=n).astype(np.int64)
    parent = list(range(n))
    nbr: list[dict[int, list[float]] | None] = [{} for _ in range(n)]
    for a, b, s in zip(start[heads].tolist(), start[tails].tolist(), sims.tolist(), strict=True):
        if a == b:
            continue
        edge = nbr[a].get(b)
        if edge is None:
            nbr[a][b] = nbr[b][a] = [s, 1.0]  # one list shared by both directions
        elif linkage == "average":
            edge[0] += s
            edge[1] += 1.0
        else:
            edge[0] = max(edge[0], s)

    def score(edge: list[float]) -> float:
        return edge[0] / edge[1] if linkage == "average" else edge[0]

    heap = [(-score(e), a, b) for a in range(n) if nbr[a] for b, e in nbr[a].items() if a < b]
    heapq.heapify(heap)
    while heap:
        negative, a, b = heapq.heappop(heap)
        if -negative < threshold:
            break
        if nbr[a] is None or nbr[b] is None or b not in nbr[a] or score(nbr[a][b]) != -negative:
            continue  # stale: a side merged away, or the pair's linkage changed since
        oa, ob = owner.get(a), owner.get(b)
        if ((a in frozen and b in frozen) or (oa is not None and ob is not None and oa != ob)
                or (oa is not None and oa in forbidden.get(b, ())) or (ob is not None and ob in forbidden.get(a, ()))):
            del nbr[a][b], nbr[b][a]  # a pair that may never merge
            continue
        keep, gone = (a, b) if size[a] >= size[b] else (b, a)
        size[keep] += size[gone]
        kept, moved = nbr[keep], nbr[gone]
        del kept[gone]
        for other, edge in moved.items():
            if other == keep:
                continue
            theirs = nbr[other]
            del theirs[gone]
            mine = kept.get(other)
            if mine is None:
                kept[other] = theirs[keep] = mine = edge
            elif linkage == "average":
                mine[0] += edge[0]
                mine[1] += edge[1]
            else:
                mine[0] = max(mine[0], edge[0])
            heapq.heappush(heap, (-score(mine), min(keep, other), max(keep, other)))
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
    neighbours, cosines = knn_graph(vectors, k)
    heads, tails, sims = edges_of(neighbours, cosines)
    return agglomerate(len(vectors), heads, tails, sims, threshold, constraints, linkage)
