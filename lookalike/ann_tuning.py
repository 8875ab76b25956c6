"""How hard Annoy must search a catalog, measured when the index is built.

A fixed effort (search_k = candidates x trees) gave recall@30 0.994 on the 3.5k-photo catalog but
0.48 on 1M synthetic vectors (bench/REPORT.md): the effort that keeps recall grows with the catalog.
So the build samples catalog vectors as queries, finds their exact top-30 by brute force, and keeps
the smallest effort, in doublings, whose Annoy candidates (re-ranked exactly, as search does) recall
TARGET_RECALL of them. Search reads it from the manifest (`search_k_per_candidate`).
"""

from __future__ import annotations

import numpy as np
from annoy import AnnoyIndex

from lookalike.exact_search import nearest

TARGET_RECALL = 0.97
RECALL_K = 30
SAMPLE = 200
MAX_DOUBLINGS = 7  # up to 128 x the trees per candidate


def tune_search_k(index: AnnoyIndex, vectors: np.ndarray, trees: int, candidates: int, seed: int = 0) -> dict:
    """{"search_k_per_candidate", "tuned_recall_at_30", "tuning_queries"} for `index` over `vectors`."""
    k = min(RECALL_K, len(vectors))
    rng = np.random.default_rng(seed)
    queries = vectors[np.sort(rng.choice(len(vectors), min(SAMPLE, len(vectors)), replace=False))]
    _, truth = nearest(vectors, queries, k)
    per_candidate, recall = trees, 0.0
    for doubling in range(MAX_DOUBLINGS + 1):
        per_candidate = trees * 2**doubling
        hits = 0
        for query, expected in zip(queries, truth, strict=True):
            ids = np.asarray(index.get_nns_by_vector(query.tolist(), candidates, per_candidate * candidates))
            best = ids[np.argsort(-(vectors[ids] @ query), kind="stable")[:k]]
            hits += len(np.intersect1d(best, expected))
        recall = hits / truth.size
        if recall >= TARGET_RECALL:
            break
    return {"search_k_per_candidate": per_candidate, "tuned_recall_at_30": round(recall, 4),
            "tuning_queries": len(queries)}
