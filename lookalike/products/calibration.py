"""A similarity a shopper can read: a hit's cosine mapped to the share of such pairs that are alike.

A raw cosine (or `(1 + cos) / 2`) means nothing to a person: with these embedders an unrelated item scores
well above the middle of that scale, not far below a near-identical one. So each build calibrates its own
catalog: every sampled catalog photo, embedded as search embeds a query, is a query for its nearest other
photos, and a logistic fit per category of the hit maps each pair's cosine to how often pairs that close share
the category. A hit's `similarity` then reads as "pairs this close are of the same kind N% of the time"; the
raw `cosine` and `distance` stay beside it. How well it holds for photos outside the catalog is measured in
docs/benchmarks.md (similarity calibration).
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
#: Pairs a category's hits need for a curve of their own; fewer: the catalog-wide curve.
MIN_PAIRS = 200


@dataclass(frozen=True)
class Curve:
    """Cosine -> share of pairs that are alike: a logistic curve (Platt scaling), smooth and increasing, so
    hits a shopper compares get different figures (a stepwise fit gives a page of hits one figure)."""

    slope: float
    intercept: float
    pairs: int

    def score(self, cosine: float) -> float:
        return float(1.0 / (1.0 + np.exp(-(self.slope * cosine + self.intercept))))

    @classmethod
    def fit(cls, cosines: np.ndarray, same: np.ndarray) -> Curve:
        from sklearn.linear_model import LogisticRegression  # here: searching needs no sklearn

        share = float(np.clip(same.mean(), 1e-4, 1 - 1e-4))
        flat = cls(0.0, round(float(np.log(share / (1 - share))), 4), int(same.size))  # that share everywhere
        if same.min() == same.max():
            return flat
        model = LogisticRegression(C=100.0).fit(cosines[:, None], same)
        slope = float(model.coef_[0, 0])
        if slope <= 0:  # closer never less alike: no evidence of a trend, so no trend
            return flat
        return cls(round(slope, 4), round(float(model.intercept_[0]), 4), int(same.size))

    def to_dict(self) -> dict:
        return {"pairs": self.pairs, "slope": self.slope, "intercept": self.intercept}

    @classmethod
    def from_dict(cls, entry: dict) -> Curve:
        return cls(float(entry["slope"]), float(entry["intercept"]), int(entry["pairs"]))


@dataclass(frozen=True)
class SimilarityCalibration:
    """One curve per category of the hit, and one for them all (a category with too few pairs, an index
    updated with a new one). Per category, because how close alike photos are differs by kind: cartons of
    different products are closer than two photos of the same kind of garment, so a single curve pooled
    over a whole catalog goes flat where the kinds overlap and says the same figure for every hit."""

    overall: Curve
    categories: dict[str, Curve]
    label: str = "category"

    def score(self, cosine: float, category: str | None = None) -> float:
        return self.categories.get(category, self.overall).score(cosine)

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: Sequence[str], seed: int = 0,
            query_vectors: np.ndarray | None = None) -> SimilarityCalibration | None:
        """Fitted on the catalog itself (leave-one-out); None for a catalog too small to say anything. The sampled
        photos query `vectors` with their `query_vectors` (row for row; default: `vectors`): the photos as search
        embeds a query, since a catalog photo's own catalog vector (averaged with its mirror image) lies closer to
        the catalog than a real query does, and the curves fitted on it read high for real queries (issue 38)."""
        count = len(labels)
        if count < 3 or len(set(labels)) < 2:
            return None
        rng = np.random.default_rng(seed)
        queries = np.sort(rng.choice(count, size=min(SAMPLE, count), replace=False))
        asked = vectors if query_vectors is None else query_vectors
        cosines, found = nearest(vectors, asked[queries], min(NEIGHBOURS + 1, count))
        others = found != queries[:, None]  # a photo is not its own neighbour
        names = np.asarray(labels)
        hit_category = names[found][others]
        same = (names[found] == names[queries][:, None])[others].astype(float)
        cosines = cosines[others].astype(float)
        per_category = {
            str(name): Curve.fit(cosines[mine], same[mine])
            for name in np.unique(hit_category)
            if (mine := hit_category == name).sum() >= MIN_PAIRS
        }
        return cls(Curve.fit(cosines, same), per_category)

    def to_dict(self) -> dict:
        return {"label": self.label, **self.overall.to_dict(),
                "categories": {name: curve.to_dict() for name, curve in self.categories.items()}}

    @classmethod
    def from_dict(cls, entry: dict) -> SimilarityCalibration:
        categories = {name: Curve.from_dict(curve) for name, curve in entry.get("categories", {}).items()}
        return cls(Curve.from_dict(entry), categories, entry.get("label", "category"))


def linear_similarity(cosine: float | np.ndarray) -> float | np.ndarray:
    """The mapping of indexes built before calibration: the cosine moved linearly onto [0, 1]."""
    return (1.0 + cosine) / 2.0
