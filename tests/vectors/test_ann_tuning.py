"""Build-time tuning of Annoy's search effort: raised until recall is met, never raised when it is."""

from __future__ import annotations

import numpy as np
from annoy import AnnoyIndex

from bench.ann import clustered_unit_vectors
from lookalike.vectors.ann_tuning import TARGET_RECALL, tune_search_k
from lookalike.vectors.neighbours import nearest


def _index(vectors: np.ndarray, trees: int) -> AnnoyIndex:
    index = AnnoyIndex(vectors.shape[1], "angular")
    index.set_seed(0)
    for i, vector in enumerate(vectors):
        index.add_item(i, vector)
    index.build(trees, n_jobs=1)
    return index


def test_effort_is_raised_until_recall_is_met_on_unseen_queries() -> None:
    drawn = clustered_unit_vectors(20_100, 32, seed=0)
    vectors, queries = drawn[:20_000], drawn[20_000:]  # new photos from the catalog's own distribution
    index = _index(vectors, trees=2)
    tuned = tune_search_k(vectors, trees=2, candidates=120)
    assert tuned["search_k_per_candidate"] > 2 and tuned["tuned_recall_at_30"] >= TARGET_RECALL

    _, truth = nearest(vectors, queries, 30)

    def recall(per_candidate: int) -> float:
        hits = 0
        for query, expected in zip(queries, truth, strict=True):
            ids = np.asarray(index.get_nns_by_vector(query.tolist(), 120, 120 * per_candidate))
            hits += len(np.intersect1d(ids[np.argsort(-(vectors[ids] @ query))[:30]], expected))
        return hits / truth.size

    assert recall(tuned["search_k_per_candidate"]) > recall(2) + 0.05


def test_a_small_catalog_keeps_the_tree_count() -> None:
    vectors = clustered_unit_vectors(400, 32, seed=2)
    assert tune_search_k(vectors, trees=32, candidates=120)["search_k_per_candidate"] == 32
