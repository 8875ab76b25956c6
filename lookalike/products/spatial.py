"""Re-rank the nearest catalog items of a query by spatial verification with local features.

A global CNN vector knows "a red milk carton" but not "this brand's carton": two products of one shelf often
sit closer than two photos of one product. Local keypoints matched between the query and a candidate, and
kept only when one homography explains them (RANSAC inliers), count the pattern the two photos share, which
is the evidence of "the same product". Catalog-side features are extracted once, when the index is built
(`extract`, stored by `local_features.write_local_features`), so a query pays for its own extraction and for
matching its first candidates only.

The defaults below were picked on a dev split of the GroceryStore train photos (the last 16 photos of each
product left out of the catalog, every 4th of them a query; never the official val photos), for the best
exact-product recall@1 under the query budget: verifying the first candidates at 348 px raised it in the
predicted category and in the whole catalog; USAC_ACCURATE matched a little better than classic RANSAC at a
fraction of its cost a candidate. A larger side (512 px) bought a little more recall for twice the extraction
time; ORB matched as well but slower (Hamming brute force); alpha-QE over the global vectors never raised
recall@1 and lowered recall@10 (the nearest photos it averages in are too often another product). Figures in
docs/experiments/spatial-reranking.md. Issue 37 made a query cheaper with the quality held on held-out queries
(`bench/query_levers.py`, docs/experiments/query-speed.md): the query's keypoints at QUERY_SIDE (it was 348 px),
and the verification stops at the first candidate with STOP_INLIERS; matching fewer points (MATCH_POINTS) or
verifying only the first 10 candidates lost exact-product recall on held-out queries, so both stay as they were.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image
from threadpoolctl import ThreadpoolController

#: Longest side a catalog photo is resized to before detection (the scale its stored keypoints are at).
MAX_SIDE = 348
#: Longest side a query photo is resized to before detection. SIFT's scale invariance and a homography that
#: maps query pixels onto the candidate's (the RANSAC threshold is in the candidate's pixels, at MAX_SIDE) let
#: the query be smaller than the catalog photos: fewer query keypoints, so a cheaper extraction and smaller
#: matrix products (issue 37: 256 px, then 200 in its third round; docs/experiments/query-speed.md).
QUERY_SIDE = 200
#: Keypoints kept per photo (the strongest): bounds the stored bytes.
MAX_POINTS = 500
#: Keypoints of each photo matched (the strongest, of those stored): bounds the matching time. 300 made the
#: matching ~40 % cheaper but lost exact products on GroceryStore val in combination (issue 37), so all are used.
MATCH_POINTS = 500
#: Lowe's ratio test: a match counts when its best distance is below RATIO x the second best.
RATIO = 0.8
#: RANSAC reprojection threshold in pixels, at MAX_SIDE; the estimator (OpenCV's USAC: nearly the same inlier
#: counts as classic RANSAC on val pairs, many times faster; docs/experiments/spatial-reranking.md).
RANSAC_PX = 5.0
ESTIMATOR = cv2.USAC_ACCURATE
#: Candidates (in cosine order) that are verified; the rest keep their cosine order below them.
TOP_N = 20
#: Early exit: the candidates are verified in cosine order until one has this many inliers (None: all TOP_N).
#: Such a candidate is all but surely the query's product and outranks the rest; on the grocery queries, where
#: it is often the first or second, most of the matching goes (issue 37's third round).
STOP_INLIERS: int | None = 60
#: Score of a verified candidate: cosine + WEIGHT * log(1 + inliers).
WEIGHT = 0.2
#: Category evidence: the whole catalog's first TOP_N items with at least VOTE_INLIERS inliers vote for their
#: category (one vote each), and the votes' share VOTE_WEIGHT is blended into the category probabilities.
VOTE_INLIERS = 20
VOTE_WEIGHT = 0.35

_SIFT = cv2.SIFT_create(nfeatures=MAX_POINTS)


@dataclass(frozen=True)
class LocalFeatures:
    """SIFT keypoints of one photo: `points` (n, 2) float16 pixel positions at MAX_SIDE and `descriptors`
    (n, 128) uint8 (OpenCV's SIFT values are integers in 0..255, so uint8 loses nothing): 132 bytes a point."""

    points: np.ndarray
    descriptors: np.ndarray

    @classmethod
    def empty(cls) -> LocalFeatures:
        """A photo without keypoints (blank, unreadable): never verified."""
        return cls(np.zeros((0, 2), np.float16), np.zeros((0, 128), np.uint8))

    def strongest(self, count: int) -> LocalFeatures:
        """The `count` strongest keypoints (`extract` stores them strongest first)."""
        return self if len(self.points) <= count else LocalFeatures(self.points[:count], self.descriptors[:count])

    @property
    def nbytes(self) -> int:
        return self.points.nbytes + self.descriptors.nbytes


def extract(image: Image.Image, side: int = MAX_SIDE) -> LocalFeatures:
    """The strongest MAX_POINTS SIFT keypoints of a photo resized (up or down) to `side` (MAX_SIDE for catalog
    photos, QUERY_SIDE for a query's), so that photos of any size are described at one scale."""
    gray = image.convert("L")
    scale = side / max(gray.size)
    if scale != 1:
        gray = gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))), Image.BICUBIC)
    keypoints, descriptors = _SIFT.detectAndCompute(np.asarray(gray), None)
    if descriptors is None:
        return LocalFeatures.empty()
    order = np.argsort([-point.response for point in keypoints])[:MAX_POINTS]
    points = np.array([keypoints[i].pt for i in order], np.float16).reshape(-1, 2)
    return LocalFeatures(points, np.clip(np.rint(descriptors[order]), 0, 255).astype(np.uint8))


def _root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT (L1-normalise, square root): Euclidean distance then compares like the Hellinger kernel,
    which matches SIFT histograms more reliably than L2 on the raw values."""
    values = descriptors.astype(np.float32)
    return np.sqrt(values / np.maximum(values.sum(axis=1, keepdims=True), 1e-6))


def ratio_matches(similarity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(query rows, their candidate rows) passing Lowe's ratio test, from the RootSIFT similarity matrix
    [query points, candidate points] (changed in place)."""
    rows = np.arange(len(similarity))
    target = similarity.argmax(axis=1)
    best = similarity[rows, target]
    similarity[rows, target] = -np.inf
    second = similarity.max(axis=1)
    distance, next_distance = np.sqrt(np.maximum(2 - 2 * best, 0)), np.sqrt(np.maximum(2 - 2 * second, 0))
    good = np.flatnonzero(distance < RATIO * next_distance)
    return good, target[good]


def matched_points(query: LocalFeatures, candidate: LocalFeatures) -> tuple[np.ndarray, np.ndarray]:
    """The ratio-test matches between two photos that one RANSAC homography explains, as two float32 [n, 2]
    arrays of keypoints (row i of one matches row i of the other; none when under 4 matches). Nearest
    neighbours come from one matrix product (RootSIFT rows are unit vectors, so squared distance is 2 - 2 x
    dot): several times faster than OpenCV's brute-force knnMatch, and the same matches."""
    return _Query(query).matched_points(candidate)


def count_inliers(query: LocalFeatures, candidate: LocalFeatures) -> int:
    """How many keypoint matches one homography explains (`matched_points`)."""
    return len(matched_points(query, candidate)[0])


class _Query:
    """A query's strongest MATCH_POINTS keypoints with their RootSIFT rows, made once for all its candidates."""

    def __init__(self, features: LocalFeatures) -> None:
        self.features = features.strongest(MATCH_POINTS)
        self.root = _root_sift(self.features.descriptors)

    def matched_points(self, candidate: LocalFeatures) -> tuple[np.ndarray, np.ndarray]:
        none = (np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32))
        candidate = candidate.strongest(MATCH_POINTS)
        if len(self.features.points) < 2 or len(candidate.points) < 2:
            return none
        good, target = ratio_matches(self.root @ _root_sift(candidate.descriptors).T)
        if len(good) < 4:
            return none
        source = self.features.points[good].astype(np.float32)
        destination = candidate.points[target].astype(np.float32)
        _, mask = cv2.findHomography(source, destination, ESTIMATOR, RANSAC_PX)
        if mask is None:
            return none
        kept = mask.ravel().astype(bool)
        return source[kept], destination[kept]

    def count(self, candidate: LocalFeatures | None) -> int:
        return 0 if candidate is None else len(self.matched_points(candidate)[0])


def spatial_scores(query: LocalFeatures, candidates: Sequence[LocalFeatures | None]) -> np.ndarray:
    """Inlier counts of each candidate against the query (0 for a candidate without stored features).

    The matrix products run on one BLAS thread: these are small, and OpenBLAS's threads keep spinning after
    each call, which took the cores from the next query's network and slowed search with re-ranking."""
    prepared = _Query(query)
    with _blas().limit(limits=1, user_api="blas"):
        return np.array([prepared.count(c) for c in candidates], np.int64)


class Verification:
    """One query's keypoints, matched against catalog items on demand and each item once: the category vote
    and the re-ranking of the scope's first hits verify overlapping candidates."""

    def __init__(
        self,
        query: LocalFeatures,
        lookup: Callable[[Sequence[int]], Sequence[LocalFeatures | None]],
        known: dict[int, int] | None = None,
    ):
        """`known`: item id -> count found earlier for this query, not matched again; new counts are added to
        it, so a caller keeping it (`parts.keypoints.KeypointCue`) never matches a candidate twice."""
        self.query, self._lookup = query, lookup
        self._counts = known if known is not None else {}

    def counts(self, ids: Sequence[int]) -> np.ndarray:
        """Inlier counts of the items `ids` (0 for an item without stored features). With STOP_INLIERS, `ids`
        are matched in their order until one has that many; the later ones read 0 and are not remembered."""
        ids = [int(i) for i in ids]
        found, prepared = np.zeros(len(ids), np.int64), None
        with _blas().limit(limits=1, user_api="blas"):
            for position, item in enumerate(ids):
                if item not in self._counts:
                    prepared = prepared or _Query(self.query)
                    self._counts[item] = prepared.count(self._lookup([item])[0])
                found[position] = self._counts[item]
                if STOP_INLIERS is not None and found[position] >= STOP_INLIERS:
                    break
        return found


def category_vote(probs: np.ndarray, labels: np.ndarray, inliers: np.ndarray) -> np.ndarray:
    """Category probabilities blended with a vote of the verified candidates (`labels`: their category
    numbers, `inliers`: their counts). A photo of this very product in the catalog is near-certain evidence of
    the category, where the head only sees a carton like several categories' cartons (soy milk, oat milk).

    Chosen on the dev split: the vote raised category top-1 over a range of inlier counts and weights; the
    most inliers and the smallest weight at the best score were taken (VOTE_INLIERS, VOTE_WEIGHT). Few fashion
    queries (one photo per product) have such a candidate, nearly every grocery one does, so the gain on the
    half/half split is small. Figures in docs/experiments/spatial-reranking.md."""
    verified = np.asarray(inliers) >= VOTE_INLIERS
    if not verified.any():
        return probs
    votes = np.bincount(np.asarray(labels)[verified], minlength=len(probs)) / verified.sum()
    return (1.0 - VOTE_WEIGHT) * probs + VOTE_WEIGHT * votes


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()  # inspects the loaded libraries once


def rerank(
    ids: Sequence[int], cosines: np.ndarray, inliers: np.ndarray, weight: float = WEIGHT
) -> tuple[list[int], np.ndarray]:
    """Candidates (in cosine order; `inliers` covers the first len(inliers) of them) re-ordered by
    cosine + weight * log(1 + inliers). At the default weight a handful of inliers outweighs the cosine gaps among
    the first candidates, so verified candidates rise in inlier order while photos that share only shelf
    clutter (a few inliers) barely move; the log keeps one textured pack from dwarfing the rest. Measured:
    a hard "verified above all" cut (12 inliers) ranked the same. Stable for ties."""
    counts = np.zeros(len(cosines), np.int64)
    counts[: len(inliers)] = inliers
    scores = np.asarray(cosines, np.float64) + weight * np.log1p(counts)
    order = np.argsort(-scores, kind="stable")
    return [ids[i] for i in order], scores[order]
