"""Score a clustering of labelled items (faces grouped into people) against their true identities.

    BCubed precision / recall   per item: the share of its cluster that has its identity / the share of its
                                identity that is in its cluster; averaged over items (Amigo et al., 2009)
    pairwise precision / recall over all pairs of items: pairs put together that are the same identity /
                                pairs of the same identity that are put together
    F                           the harmonic mean of each pair

Items left out of every cluster (an "unsure" face) count as clusters of their own: never merged, never
found. Standard errors: a bootstrap over identities (an identity's items stay together), since items of
one identity are not independent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["ClusterScores", "bcubed", "pairwise", "score_clustering"]


@dataclass(frozen=True)
class ClusterScores:
    items: int
    identities: int
    clusters: int
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f: float
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f: float
    bcubed_f_se: float | None = None
    pairwise_f_se: float | None = None
    pairwise_precision_se: float | None = None

    def to_dict(self) -> dict:
        return {k: round(v, 5) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _f(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _codes(values: Sequence) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind not in "iu":
        values = values.astype(str)
    return np.unique(values, return_inverse=True)[1].ravel()


def _counts(labels: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item: size of its (cluster, identity) cell, of its cluster and of its identity."""
    cell = clusters.astype(np.int64) * (labels.max() + 1) + labels
    _, cell_inv, cell_n = np.unique(cell, return_inverse=True, return_counts=True)
    _, c_inv, c_n = np.unique(clusters, return_inverse=True, return_counts=True)
    _, l_inv, l_n = np.unique(labels, return_inverse=True, return_counts=True)
    return cell_n[cell_inv], c_n[c_inv], l_n[l_inv]


def bcubed(labels: Sequence, clusters: Sequence) -> tuple[float, float, float]:
    """(precision, recall, F) of BCubed."""
    both, cluster, identity = _counts(_codes(labels), _codes(clusters))
    p, r = float(np.mean(both / cluster)), float(np.mean(both / identity))
    return p, r, _f(p, r)


def pairwise(labels: Sequence, clusters: Sequence) -> tuple[float, float, float]:
    """(precision, recall, F) over pairs of items; no pair at all on a side reads as 1."""
    labels, clusters = _codes(labels), _codes(clusters)
    cell = clusters.astype(np.int64) * (labels.max() + 1) + labels

    def pairs(codes: np.ndarray) -> float:
        counts = np.unique(codes, return_counts=True)[1].astype(np.float64)
        return float(np.sum(counts * (counts - 1) / 2))

    together, same, both = pairs(clusters), pairs(labels), pairs(cell)
    p = both / together if together else 1.0
    r = both / same if same else 1.0
    return p, r, _f(p, r)


def score_clustering(labels: Sequence, clusters: Sequence, bootstrap: int = 200, seed: int = 0) -> ClusterScores:
    """Both scores of `clusters` (a cluster per item; None: left out, a cluster of its own) against `labels`,
    with bootstrap standard errors of the F scores and of pairwise precision (`bootstrap` resamples)."""
    labels = [str(v) for v in labels]
    clusters = [f"alone-{i}" if c is None else f"c{c}" for i, c in enumerate(clusters)]
    bp, br, bf = bcubed(labels, clusters)
    pp, pr, pf = pairwise(labels, clusters)
    ses: list[float | None] = [None, None, None]
    if bootstrap:
        codes = _codes(labels)
        members = [np.flatnonzero(codes == i) for i in range(codes.max() + 1)]
        rng = np.random.default_rng(seed)
        draws = []
        cl = _codes(clusters)
        for _ in range(bootstrap):
            picked = rng.integers(0, len(members), len(members))
            # the n-th copy of an identity drawn twice or more goes into the n-th copy of every cluster, so
            # copies never merge with each other, and merges between different identities are kept
            seen: dict[int, int] = {}
            nth = []
            for i in picked.tolist():
                nth.append(seen.get(i, 0))
                seen[i] = nth[-1] + 1
            rows = np.concatenate([members[i] for i in picked])
            copy = np.concatenate([np.full(len(members[i]), c) for c, i in zip(nth, picked, strict=True)])
            scale = int(cl.max()) + 1
            lab = codes[rows].astype(np.int64) * (len(picked) + 1) + copy
            clu = cl[rows].astype(np.int64) + scale * copy
            draws.append((bcubed(lab, clu)[2], pairwise(lab, clu)[2], pairwise(lab, clu)[0]))
        spread = np.std(np.asarray(draws), axis=0, ddof=1)
        ses = [float(spread[0]), float(spread[1]), float(spread[2])]
    return ClusterScores(
        items=len(labels), identities=len(set(labels)), clusters=len(set(clusters)),
        bcubed_precision=bp, bcubed_recall=br, bcubed_f=bf,
        pairwise_precision=pp, pairwise_recall=pr, pairwise_f=pf,
        bcubed_f_se=ses[0], pairwise_f_se=ses[1], pairwise_precision_se=ses[2],
    )
