"""The similarity shown for a hit: a catalog's cosines mapped to how often pairs that close share a category."""

from __future__ import annotations

import numpy as np

from lookalike.products.calibration import SimilarityCalibration

Spreads = tuple[float, ...]


def _clusters(noise: int = 1, per: int = 60, spreads: Spreads = (0.9, 0.9, 0.9)) -> tuple[np.ndarray, list[str]]:
    """Categories of unit vectors around their own (fixed) centre, each with its spread, in 16 dimensions;
    `noise` seeds the points, so another seed gives new photos of the same categories."""
    centres = np.random.default_rng(0).normal(size=(len(spreads), 16))
    rng = np.random.default_rng(noise)
    points = [c + spread * rng.normal(size=(per, 16)) for c, spread in zip(centres, spreads, strict=True)]
    vectors = np.concatenate(points)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), [name for name in "abcdef"[: len(spreads)] for _ in range(per)]


def test_closer_pairs_score_higher_and_scores_are_shares() -> None:
    vectors, labels = _clusters()
    curve = SimilarityCalibration.fit(vectors, labels)
    assert curve is not None and set(curve.categories) == {"a", "b", "c"}
    grid = np.linspace(-1.0, 1.0, 41)
    for one in (curve.overall, *curve.categories.values()):
        scores = [one.score(c) for c in grid]
        assert scores == sorted(scores) and all(0.0 <= s <= 1.0 for s in scores)
    assert curve.score(0.99, "a") > 0.9 > 0.5 > curve.score(-0.5, "a")  # near-identical: alike; opposite: not
    assert curve.score(0.99, "unknown category") == curve.overall.score(0.99)


def test_the_score_says_what_share_of_such_hits_share_the_category() -> None:
    """New queries of the same categories, one tight and two loose: among their 30 nearest catalog items (a
    results page), the hits a score bin holds share the query's category about as often as the score says."""
    spreads = (0.5, 1.0, 1.0)
    vectors, labels = _clusters(noise=1, spreads=spreads)
    curve = SimilarityCalibration.fit(vectors, labels)
    queries, query_labels = _clusters(noise=2, per=100, spreads=spreads)
    cosines = queries @ vectors.T
    top = np.argsort(-cosines, axis=1)[:, :30]
    shown = np.take_along_axis(cosines, top, axis=1)
    hit_labels = np.asarray(labels)[top]
    same = hit_labels == np.asarray(query_labels)[:, None]
    predicted = np.vectorize(curve.score)(shown, hit_labels)
    checked = 0
    for low, high in ((0.0, 0.4), (0.4, 0.8), (0.8, 1.01)):
        inside = (predicted >= low) & (predicted < high)
        if inside.sum() > 300:
            checked += 1
            assert abs(same[inside].mean() - predicted[inside].mean()) < 0.1, (low, high)
    assert checked >= 2


def test_round_trip_and_too_small_catalogs() -> None:
    vectors, labels = _clusters()
    curve = SimilarityCalibration.fit(vectors, labels)
    assert SimilarityCalibration.from_dict(curve.to_dict()) == curve
    assert SimilarityCalibration.fit(vectors[:2], labels[:2]) is None
    assert SimilarityCalibration.fit(vectors, ["a"] * len(labels)) is None


def test_queries_farther_than_the_catalog_get_a_curve_of_their_own() -> None:
    """The fit's queries are the photos as search embeds them (issue 38): asking with the catalog's own vectors
    is the default, and asking with vectors farther from the catalog (as a photo without its mirror image is)
    moves the curve so a given cosine reads a higher share."""
    vectors, labels = _clusters()
    near = SimilarityCalibration.fit(vectors, labels)
    assert SimilarityCalibration.fit(vectors, labels, query_vectors=vectors) == near
    rng = np.random.default_rng(5)
    farther = vectors + 0.3 * rng.normal(size=vectors.shape).astype(np.float32)
    farther /= np.linalg.norm(farther, axis=1, keepdims=True)
    far = SimilarityCalibration.fit(vectors, labels, query_vectors=farther)
    assert far.score(0.5, "a") > near.score(0.5, "a")
