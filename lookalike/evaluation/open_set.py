"""Score the in-catalog decision (`lookalike.products.parts.open_set`) with known queries (photos of the
catalog's categories it never saw) and unknown ones (photos of products it does not sell).

Every query is searched as `eval-products` searches it (its vector and its head view, no keypoints or words:
the decision reads neither). Reported: the AUROC of `in_catalog_score` (known above unknown), the share of
unknown queries flagged (`in_catalog` false) and of known queries wrongly flagged at the index's threshold, each
with its standard error; the median similarity shown for each side's top hit; and the expected calibration
error of the shown similarity over every hit, on known queries (against whether the hit shares the query's
category) and on unknown ones (where no hit does, so it is their mean shown similarity).
"""

from __future__ import annotations

import itertools

import numpy as np

from lookalike.products.catalog import CatalogItem
from lookalike.products.results import QueryCues
from lookalike.products.search import ProductSearcher

#: The reliability bins of bench/similarity_calibration.py, so the two ECEs compare.
BINS = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0001])


def expected_calibration_error(score: np.ndarray, same: np.ndarray) -> float:
    """Bin-size-weighted |mean score - observed share| over BINS."""
    ece = 0.0
    for low, high in itertools.pairwise(BINS):
        inside = (score >= low) & (score < high)
        if inside.any():
            ece += inside.mean() * abs(same[inside].mean() - score[inside].mean())
    return float(ece)


def auroc_with_se(known: np.ndarray, unknown: np.ndarray) -> tuple[float, float]:
    """The chance a known query scores above an unknown one (ties half), and its standard error (Hanley and
    McNeil, 1982)."""
    from scipy.stats import rankdata  # here: only an evaluation needs scipy

    ranks = rankdata(np.concatenate([known, unknown]))
    m, n = len(known), len(unknown)
    auc = float((ranks[:m].sum() - m * (m + 1) / 2) / (m * n))
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    se = np.sqrt((auc * (1 - auc) + (m - 1) * (q1 - auc * auc) + (n - 1) * (q2 - auc * auc)) / (m * n))
    return auc, float(se)


def _share(flags: np.ndarray) -> tuple[float, float]:
    p = float(np.mean(flags))
    return p, float(np.sqrt(p * (1 - p) / len(flags)))


def searched(searcher: ProductSearcher, items: list[CatalogItem], vectors: np.ndarray, top_k: int, scope: str,
              views: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """(in-catalog score, flagged, top hit's shown similarity, per query: its hits' (similarity, same)), each
    query searched as eval-products does."""
    scores, flagged, top, hits = [], [], [], []
    for i, (item, vector) in enumerate(zip(items, vectors, strict=True)):
        cues = QueryCues() if views is None else QueryCues(head_view=views[i])
        result = searcher.search_vector(vector, top_k, scope, cues)
        scores.append(result.in_catalog_score)
        flagged.append(not result.in_catalog)
        top.append(result.results[0].similarity)
        hits.append(np.asarray([(hit.similarity, hit.category == item.category) for hit in result.results], float))
    return np.asarray(scores, float), np.asarray(flagged, bool), np.asarray(top, float), hits


def open_set_quality(
    searcher: ProductSearcher, known: tuple[list[CatalogItem], np.ndarray, np.ndarray | None],
    unknown: tuple[list[CatalogItem], np.ndarray, np.ndarray | None], top_k: int, scope: str,
) -> dict:
    """The figures of the module doc; `known`, `unknown`: the queries, their vectors and head views (or None).

    Raises:
        ValueError: the index has no in-catalog decision (built before it: `lookalike build --update` adds it)."""
    if searcher.part("open_set") is None:
        raise ValueError("this index has no in-catalog decision; `lookalike build --update` adds it")
    inside = searched(searcher, *known[:2], top_k, scope, known[2])
    outside = searched(searcher, *unknown[:2], top_k, scope, unknown[2])
    auc, auc_se = auroc_with_se(inside[0], outside[0])
    unknown_flagged, unknown_se = _share(outside[1])
    known_flagged, known_se = _share(inside[1])
    known_hits, unknown_hits = np.concatenate(inside[3]), np.concatenate(outside[3])
    return {
        "unknown_queries": len(outside[0]),
        "in_catalog_auroc": auc, "in_catalog_auroc_se": auc_se,
        "unknown_flagged": unknown_flagged, "unknown_flagged_se": unknown_se,
        "known_flagged": known_flagged, "known_flagged_se": known_se,
        "in_catalog_threshold": searcher.part("open_set").decision.threshold,
        "unknown_top_similarity_median": float(np.median(outside[2])),
        "known_top_similarity_median": float(np.median(inside[2])),
        "similarity_ece_known": expected_calibration_error(known_hits[:, 0], known_hits[:, 1]),
        "similarity_ece_unknown": expected_calibration_error(unknown_hits[:, 0], unknown_hits[:, 1]),
    }
