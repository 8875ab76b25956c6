"""A similarity a shopper can read: a hit's cosine mapped to the share of such pairs that are alike.

A raw cosine (or `(1 + cos) / 2`) means nothing to a person: with these embedders an unrelated item scores
well above the middle of that scale, not far below a near-identical one. So each build calibrates its own
catalog: every sampled catalog photo is a query for its nearest other photos, and an isotonic fit maps each
pair's cosine to how often pairs that close share the category. A hit's `similarity` then reads as "pairs this
close are of the same kind N% of the time"; the raw `cosine` and `distance` stay beside it. How well it holds
for photos outside the catalog is measured in docs/benchmarks.md (similarity calibration).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lookalike.vectors.neighbours import nearest

#: Nearest photos each sampled catalog photo is paired with: the depth of a results page.
NEIGHBOURS = 30
#: Catalog photos sampled as queries: enough pairs for a smooth curve, a second or two on a large catalog.
SAMPLE = 2000
#: Points kept of the fitted curve (the manifest stores them).
KNOTS = 48


@dataclass(frozen=True)
class SimilarityCalibration:
    """Cosine -> share of pairs that are alike, as a monotone piecewise-linear curve."""

    cosines: tuple[float, ...]
    scores: tuple[float, ...]
    pairs: int
    label: str = "category"

    def score(self, cosine: float) -> float:
        return float(np.interp(cosine, self.cosines, self.scores))

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: Sequence[str], seed: int = 0) -> SimilarityCalibration | None:
        """Fitted on the catalog itself (leave-one-out); None for a catalog too small to say anything."""
        from sklearn.isotonic import IsotonicRegression  # here: searching needs no sklearn

        count = len(labels)
        if count < 3 or len(set(labels)) < 2:
            return None
        rng = np.random.default_rng(seed)
        queries = np.sort(rng.choice(count, size=min(SAMPLE, count), replace=False))
        cosines, found = nearest(vectors, vectors[queries], min(NEIGHBOURS + 1, count))
        others = found != queries[:, None]  # a photo is not its own neighbour
        names = np.asarray(labels)
        same = (names[found] == names[queries][:, None])[others].astype(float)
        cosines = cosines[others].astype(float)
        curve = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(cosines, same)
        knots = np.unique(np.quantile(cosines, np.linspace(0.0, 1.0, KNOTS)))
        return cls(tuple(round(float(c), 5) for c in knots),
                   tuple(round(float(s), 4) for s in curve.predict(knots)), pairs=int(same.size))

    def to_dict(self) -> dict:
        return {"label": self.label, "pairs": self.pairs, "cosines": list(self.cosines), "scores": list(self.scores)}

    @classmethod
    def from_dict(cls, entry: dict) -> SimilarityCalibration:
        return cls(tuple(entry["cosines"]), tuple(entry["scores"]), int(entry["pairs"]), entry.get("label", "category"))


def linear_similarity(cosine: float) -> float:
    """The mapping of indexes built before calibration: the cosine moved linearly onto [0, 1]."""
    return (1.0 + cosine) / 2.0
