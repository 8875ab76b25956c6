"""Whether a query shows something the catalog sells: an in-catalog score in [0, 1] and its yes/no.

A search always returns the nearest items, so a photo of a watch searched in a catalog of milk cartons still
gets cartons. The cues say how far the query is from anything the catalog holds, all from the query's vector:

- the top hit's cosine;
- the cosine to the nearest category centroid, in standard units of that category's own photos' cosines to it
  (how close alike photos are differs by kind: cartons of different products are closer than two photos of
  one kind of shirt);
- where the backbone keeps its ImageNet classifier (the Lite defaults; tuning leaves it as it was): the cosine
  of the query's class profile (the classifier's softmax of the unit vector) to the nearest category's mean
  profile: the vector read through the thousand kinds of object ImageNet names (a watch, a wallet).

A logistic fit (`fit`) maps them to the probability that the query's kind is in the catalog, fitted at build on
the catalog itself by leave-one-category-out: every sampled catalog photo is an unknown query once, its whole
category taken out, and a known query once, itself and a random other category taken out; each asks with its
photo as search embeds a query (`EmbeddedCatalog.query_side`: the photo alone), not its mirror-averaged
vector. Without the profile the weights are fitted (non-negative: closer never reads less in the catalog); with
it they are fixed (PROFILE_WEIGHTS) and the fit sets the slope and bias. The default threshold flags
KNOWN_FLAGGED of the known queries, or less (`choose_threshold`). A catalog of one category (or too few photos
to leave categories out) gets a one-class rule (`kind` "one-class"): the top hit's cosine against the catalog's
own nearest-photo cosines. Why these cues and weights, and the figures: docs/experiments/open-set.md,
docs/product-search.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from lookalike.products.open_set_fit import EPS, KNOWN_FLAGGED, choose_threshold, logistic

__all__ = ["KNOWN_FLAGGED", "Classifier", "InCatalog", "Spread", "choose_threshold", "fit", "query_features"]

#: Catalog photos sampled as queries: as the similarity calibration (a second or two on a large catalog).
SAMPLE = 2000
#: Fewer leave-one-category-out queries of either side than this: the one-class rule.
MIN_QUERIES = 8
#: The one-class rule: a query as close to the catalog as this share of its own photos are to their nearest
#: other photo scores 0.5.
ONE_CLASS_QUANTILE = 0.02
FEATURES = ("top1", "centroid_z")
PROFILE_FEATURES = (*FEATURES, "profile")
#: The profile: softmax of this times a unit vector's logits. Its cues' weights are fixed (standardised top1,
#: centroid_z, profile): a left-out category's siblings left in share its profile (oat milk, soy milk), so a
#: leave-one-category-out fit weighs it 0, yet a kind from elsewhere is what it tells apart best. Both chosen on
#: the development half of the demo protocol (docs/experiments/open-set.md).
PROFILE_SCALE = 3.0
PROFILE_WEIGHTS = (1.0, 0.0, 2.0)
CHUNK = 256
#: The smallest spread a category's cosines are measured in (near-identical photos would put any new photo
#: thousands of units away), and the most units the feature counts.
SPREAD_FLOOR = 0.01
Z_LIMIT = 8.0


@dataclass(frozen=True)
class Classifier:
    """The backbone's ImageNet classifier (weight [classes, dim], bias [classes]) read from unit vectors."""

    weight: np.ndarray
    bias: np.ndarray

    def probs(self, vectors: np.ndarray) -> np.ndarray:
        """[n, classes] softmax of PROFILE_SCALE x the logits of unit vectors [n, dim]."""
        rows = np.asarray(vectors, np.float32)  # one query: einsum (BLAS threads took 7-80 ms on a loaded box)
        logits = PROFILE_SCALE * (np.einsum("nd,cd->nc", rows, self.weight) if len(rows) < 8 else rows @ self.weight.T)
        logits += self.bias
        exp = np.exp(logits - logits.max(1, keepdims=True))
        return (exp / exp.sum(1, keepdims=True)).astype(np.float64)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Spread:
    """Per category (the fit's class order): its unit centroid, its photos' cosines to it (mean, sd), and with
    a classifier, its photos' summed class profiles (`profiles`, the unit mean profile: `unit_profiles`)."""

    classes: list[str]
    centroids: np.ndarray  # [categories, dim]
    table: np.ndarray  # [categories, 2]: mean and sd of a photo's cosine to its category's centroid without it
    classifier: Classifier | None = None
    profiles: np.ndarray | None = None  # [categories, classes]: the sum of its photos' class probabilities

    @property
    def names(self) -> tuple[str, ...]:
        return FEATURES if self.classifier is None else PROFILE_FEATURES

    @cached_property
    def unit_profiles(self) -> np.ndarray:  # once per index, not once per query
        return _unit(self.profiles)

    def features(self, top1: np.ndarray, centroid_cos: np.ndarray,
                 profile_cos: np.ndarray | None = None) -> np.ndarray:
        """[n, len(names)] from each query's top hit's cosine [n], its cosine to every centroid [n, categories]
        and, with a classifier, its profile's cosine to every category's [n, categories] (-inf for a category
        not in the catalog)."""
        best = centroid_cos.argmax(1)
        units = (centroid_cos[np.arange(len(best)), best] - self.table[best, 0]) / self.table[best, 1]
        columns = [top1, np.clip(units, -Z_LIMIT, Z_LIMIT)]
        return np.stack(columns if profile_cos is None else [*columns, profile_cos.max(1)], axis=1)


@dataclass(frozen=True)
class InCatalog:
    """The fitted decision: standardised features -> logistic score; `threshold` the default yes/no."""

    kind: str  # "loco" (leave-one-category-out fit) or "one-class"
    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    threshold: float
    report: dict  # what the fit saw: queries of each side, its own AUROC and rates at the threshold
    features: tuple[str, ...] = FEATURES

    def score(self, features: np.ndarray) -> np.ndarray:
        logits = ((features - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "features": list(self.features),
                "weights": [round(float(w), 6) for w in self.weights],
                "bias": round(self.bias, 6), "mean": [round(float(m), 6) for m in self.mean],
                "scale": [round(float(s), 6) for s in self.scale], "threshold": round(self.threshold, 4),
                "fit": self.report}

    @classmethod
    def from_dict(cls, entry: dict) -> InCatalog:
        features = tuple(entry.get("features", ()))
        if features not in (FEATURES, PROFILE_FEATURES):
            raise ValueError(f"in-catalog features {list(features)} are not this version's {list(PROFILE_FEATURES)}")
        return cls(entry["kind"], np.asarray(entry["weights"]), float(entry["bias"]), np.asarray(entry["mean"]),
                   np.asarray(entry["scale"]), float(entry["threshold"]), entry.get("fit", {}), features)


def _sums(vectors: np.ndarray, codes: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    sums = np.zeros((count, vectors.shape[1]))
    np.add.at(sums, codes, vectors)
    return sums, np.bincount(codes, minlength=count)


def _own_centroid_cos(rows: np.ndarray, codes: np.ndarray, sums: np.ndarray, sizes: np.ndarray,
                      asked: np.ndarray | None = None) -> np.ndarray:
    """Each photo's cosine (from its `asked` row, default its own) to its category's centroid without it (nan:
    it is its category's only photo)."""
    others = sums[codes] - rows
    asked = rows if asked is None else asked
    cos = np.einsum("ij,ij->i", asked, others) / np.maximum(np.linalg.norm(others, axis=1), 1e-12)
    return np.where(sizes[codes] > 1, cos, np.nan)


def _spread(vectors: np.ndarray, codes: np.ndarray, classes: list[str], classifier: Classifier | None) -> Spread:
    """Each category's centroid and its photos' cosines to it (a category of one photo: the whole catalog's),
    and its photos' summed class profiles (a chunk of photos at a time)."""
    sums, sizes = _sums(vectors, codes, len(classes))
    own = _own_centroid_cos(vectors, codes, sums, sizes)
    usable = np.isfinite(own)
    overall = [float(own[usable].mean()), max(float(own[usable].std()), SPREAD_FLOOR)] if usable.sum() > 1 else [
        0.0, 1.0]
    table = []
    for code in range(len(classes)):
        mine = own[usable & (codes == code)]
        table.append([float(mine.mean()), max(float(mine.std()), SPREAD_FLOOR)] if len(mine) > 1 else overall)
    profiles = None
    if classifier is not None:
        profiles = np.zeros((len(classes), len(classifier.bias)))
        for start in range(0, len(codes), CHUNK):
            np.add.at(profiles, codes[start:start + CHUNK], classifier.probs(vectors[start:start + CHUNK]))
    return Spread(classes, _unit(sums), np.asarray(table), classifier, profiles)


def _loco(vectors: np.ndarray, codes: np.ndarray, spread: Spread, queries: np.ndarray, rng: np.random.Generator,
          asked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features of every sampled photo as an unknown query (its category left out) and, when its category has
    another photo, as a known one (itself and a random other category left out); labels 1 = known. A photo
    queries with its `asked` row (default: its catalog vector); what is left out is its catalog vector."""
    count = len(spread.classes)
    sums, sizes = _sums(vectors, codes, count)
    asked = vectors if asked is None else asked
    features, labels = [], []
    for start in range(0, len(queries), CHUNK):
        rows = queries[start:start + CHUNK]
        own, n, mine = codes[rows], len(rows), np.arange(count) == codes[rows][:, None]
        scores = asked[rows] @ vectors.T
        centroid_cos = asked[rows] @ spread.centroids.T
        profile_cos, probs = None, None
        if spread.classifier is not None:
            probs = spread.classifier.probs(vectors[rows])  # what its category's summed profile holds of it
            unit_probs = _unit(probs if asked is vectors else spread.classifier.probs(asked[rows]))
            profile_cos = unit_probs @ spread.unit_profiles.T
        unknown = np.where(codes[None, :] == own[:, None], -np.inf, scores).max(1)
        features.append(spread.features(unknown, np.where(mine, -np.inf, centroid_cos),
                                        None if probs is None else np.where(mine, -np.inf, profile_cos)))
        labels.append(np.zeros(n))
        other = (own + rng.integers(1, count, n)) % count
        scores[np.arange(n), rows] = -np.inf
        known = np.where(codes[None, :] == other[:, None], -np.inf, scores).max(1)
        centroid_cos[np.arange(n), other] = -np.inf
        centroid_cos[np.arange(n), own] = _own_centroid_cos(vectors[rows], own, sums, sizes, asked[rows])
        if probs is not None:  # its own category's profile without it
            profile_cos[np.arange(n), other] = -np.inf
            profile_cos[np.arange(n), own] = np.einsum("ij,ij->i", unit_probs, _unit(spread.profiles[own] - probs))
        keep = sizes[own] > 1
        features.append(spread.features(known, np.nan_to_num(centroid_cos, nan=-np.inf), profile_cos)[keep])
        labels.append(np.ones(int(keep.sum())))
    return np.concatenate(features), np.concatenate(labels)


def _weighted(features: np.ndarray, known: np.ndarray, fixed: bool) -> tuple[np.ndarray, float]:
    """The fit's weights: all fitted, or PROFILE_WEIGHTS times a fitted slope (`fixed`, the profile cue)."""
    if not fixed:
        return logistic(features, known)
    direction = np.asarray(PROFILE_WEIGHTS)
    slope, bias = logistic(features @ direction[:, None], known)
    return slope[0] * direction, bias


def fit(vectors: np.ndarray, labels: Sequence[str], seed: int = 0, classifier: Classifier | None = None,
        query_vectors: np.ndarray | None = None) -> tuple[Spread, InCatalog] | None:
    """The in-catalog decision fitted on the catalog itself (with the class-profile cue when `classifier` is
    given); None for a catalog of fewer than 3 photos. The sampled photos query with their `query_vectors` (row
    for row; default: `vectors`), the photos as search embeds a query: a catalog photo's mirror-averaged vector
    lies closer to the catalog than a real query, so a threshold fitted on it flags more real known queries
    than KNOWN_FLAGGED (issue 38). The centroids and their spreads stay the catalog's own."""
    from sklearn.metrics import roc_auc_score  # here: searching needs no sklearn

    if len(labels) < 3:
        return None
    vectors = np.asarray(vectors, np.float64)
    asked = vectors if query_vectors is None else np.asarray(query_vectors, np.float64)
    classes, codes = np.unique(np.asarray(labels), return_inverse=True)
    spread = _spread(vectors, codes, [str(c) for c in classes], classifier)
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(len(codes), size=min(SAMPLE, len(codes)), replace=False))
    if len(classes) > 1:
        features, known = _loco(vectors, codes, spread, queries, rng, asked)
        if min(known.sum(), (1 - known).sum()) >= MIN_QUERIES:
            mean, scale = features.mean(0), np.maximum(features.std(0), EPS)
            weights, bias = _weighted((features - mean) / scale, known, classifier is not None)
            fitted = InCatalog("loco", weights, bias, mean, scale, 0.5, {}, spread.names)
            scores = fitted.score(features)
            inside, outside = scores[known == 1], scores[known == 0]
            threshold = choose_threshold(inside, outside)
            report = {"known_queries": len(inside), "unknown_queries": len(outside), "categories": len(classes),
                      "auroc": round(float(roc_auc_score(known, scores)), 4),
                      "known_flagged": round(float((inside < threshold).mean()), 4),
                      "unknown_flagged": round(float((outside < threshold).mean()), 4)}
            return spread, InCatalog("loco", weights, bias, mean, scale, threshold, report, spread.names)
    return spread, _one_class(vectors, queries, len(classes), spread.names, asked)


def _one_class(vectors: np.ndarray, queries: np.ndarray, categories: int, names: tuple[str, ...],
               asked: np.ndarray) -> InCatalog:
    """A catalog with nothing to leave out: the top hit's cosine against the catalog's own nearest-photo cosines
    (each photo asking with its `asked` row), 0.5 at their ONE_CLASS_QUANTILE, rising by one unit of logit per
    quarter of their spread."""
    nearest_other = np.empty(len(queries))
    for start in range(0, len(queries), CHUNK):
        rows = queries[start:start + CHUNK]
        scores = asked[rows] @ vectors.T
        scores[np.arange(len(rows)), rows] = -np.inf
        nearest_other[start:start + len(rows)] = scores.max(1)
    cut, scale = float(np.quantile(nearest_other, ONE_CLASS_QUANTILE)), max(float(nearest_other.std()) / 4, EPS)
    report = {"known_queries": len(queries), "unknown_queries": 0, "categories": categories}
    rest = len(names) - 1  # the other features weigh nothing
    return InCatalog("one-class", np.r_[1.0, [0.0] * rest], 0.0, np.r_[cut, [0.0] * rest], np.r_[scale, [1.0] * rest],
                     0.5, report, names)


def query_features(spread: Spread, top1: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """The features of queries at search time: their top hit's cosine [n] and their vectors [n, dim]."""
    vectors, profile_cos = np.asarray(vectors, np.float64), None
    if spread.classifier is not None:
        profile_cos = _unit(spread.classifier.probs(vectors)) @ spread.unit_profiles.T
    return spread.features(np.asarray(top1, np.float64), vectors @ spread.centroids.T, profile_cos)
