"""How hard Annoy must search a catalog, measured when the index is built.

The effort (search_k = candidates x nodes per candidate) that keeps recall depends on the catalog's
size and shape, so the build measures it: a sample of the catalog is held out, the rest indexed as
the real index is (same trees, same seed), and the smallest effort, in doublings from the tree count,
at which the held-out photos' Annoy candidates (re-ranked exactly, as search does) recall
TARGET_RECALL of their exact top-30 is kept. Held out, because a photo that is itself in the index is
easier to find, so indexed queries would overstate the recall a new photo gets
(docs/experiments/ann-tuning.md). Search reads the result from the manifest (`search_k_per_candidate`).
On the shared catalog and on 100k / 1M synthetic vectors the tree count already reaches the target
(docs/benchmarks.md); a catalog that needs more gets it without anyone choosing a number.
"""

from __future__ import annotations

import numpy as np

from lookalike.vectors.neighbours import annoy_top_k, nearest, new_annoy

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
            best, _ = annoy_top_k(index, base, query, k, candidates, per_candidate * candidates)
            hits += len(np.intersect1d(best, expected))
        recall = hits / truth.size
        if recall >= TARGET_RECALL:
            break
    index.unload()
    return {"search_k_per_candidate": per_candidate, "tuned_recall_at_30": round(recall, 4),
            "tuning_queries": held_out}
