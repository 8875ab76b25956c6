"""How hard Annoy must search a catalog, measured when the index is built.

A fixed effort (search_k = candidates x trees) gave recall@30 0.994 on the 3.5k-photo catalog but
0.48 on 1M synthetic vectors (bench/REPORT.md): the effort that keeps recall grows with the catalog.
So the build holds a sample of the catalog out, indexes the rest as the real index is built (same
trees, same seed), and keeps the smallest effort, in doublings, at which the held-out photos' Annoy
candidates (re-ranked exactly, as search does) recall TARGET_RECALL of their exact top-30. Held out,
because a photo that is itself in the index is far easier to search for: on 100k synthetic vectors,
recall 0.997 for indexed queries against 0.803 for new ones at the same effort.
Search reads the result from the manifest (`search_k_per_candidate`).
"""

from __future__ import annotations

import numpy as np

from lookalike.exact_search import nearest
from lookalike.product_index import new_annoy

TARGET_RECALL = 0.97
RECALL_K = 30
SAMPLE = 200  # held-out queries, at most a fifth of the catalog
MAX_DOUBLINGS = 7  # up to 128 x the trees per candidate


def tune_search_k(vectors: np.ndarray, trees: int, candidates: int, seed: int = 0) -> dict:
    """{"search_k_per_candidate", "tuned_recall_at_30", "tuning_queries"} for an index of `vectors`."""
    held_out = min(SAMPLE, len(vectors) // 5)
    if held_out == 0:
        return {"search_k_per_candidate": trees, "tuned_recall_at_30": None, "tuning_queries": 0}
    rng = np.random.default_rng(seed)
    is_query = np.zeros(len(vectors), bool)
    is_query[rng.choice(len(vectors), held_out, replace=False)] = True
    base, queries = vectors[~is_query], vectors[is_query]
    index = new_annoy(base, np.arange(len(base)), trees)  # laid out as the real index is
    k = min(RECALL_K, len(base))
    _, truth = nearest(base, queries, k)
    per_candidate, recall = trees, 0.0
    for doubling in range(MAX_DOUBLINGS + 1):
        per_candidate = trees * 2**doubling
        hits = 0
        for query, expected in zip(queries, truth, strict=True):
            ids = np.asarray(index.get_nns_by_vector(query.tolist(), candidates, per_candidate * candidates))
            best = ids[np.argsort(-(base[ids] @ query), kind="stable")[:k]]
            hits += len(np.intersect1d(best, expected))
        recall = hits / truth.size
        if recall >= TARGET_RECALL:
            break
    index.unload()
    return {"search_k_per_candidate": per_candidate, "tuned_recall_at_30": round(recall, 4),
            "tuning_queries": held_out}
