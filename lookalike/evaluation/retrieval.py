"""Ranking metrics for one query: each takes the relevance (bool) of its results in rank order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def precision_at_k(relevant: Sequence[bool], k: int) -> float:
    """Share of the first k results that are relevant (missing results count as not relevant)."""
    return float(np.sum(np.asarray(relevant[:k], dtype=bool))) / k


def average_precision_at_k(relevant: Sequence[bool], k: int, n_relevant: int) -> float:
    """AP@k: mean of precision@i over the relevant ranks i <= k, divided by min(k, n_relevant)."""
    hits = np.asarray(relevant[:k], dtype=bool)
    if n_relevant == 0 or not hits.any():
        return 0.0
    precisions = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precisions[hits].sum() / min(k, n_relevant))
