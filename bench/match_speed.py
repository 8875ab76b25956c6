"""The verification of a query's first candidates (`spatial.spatial_scores`), matcher against matcher, on an
index's real candidates (issue 37): each held-out query's keypoints at QUERY_SIDE and the stored keypoints of
its first TOP_N hits in the whole catalog, matched by every variant in turn (interleaved query by query), with
each variant's inlier counts compared to the reference's (today's per-candidate matcher).

    python bench/match_speed.py --index IDX --queries QUERIES.csv [--every 10] [--out bench/out/match.md]

Variants: "per-candidate" (today: one matrix product a candidate), "batched" (one product over all candidates),
"batched, 2 BLAS threads", and the batched matcher with other RANSAC estimators (USAC_FAST, classic RANSAC).
Prints per variant the median time of one query's verification, the median per-query ratio to the reference
(with its IQR), and the share of candidates whose inlier count equals the reference's. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lookalike.evaluation.report import markdown_table, show  # noqa: E402
from lookalike.images.loading import load_image  # noqa: E402
from lookalike.products import spatial  # noqa: E402
from lookalike.products.catalog import from_manifest  # noqa: E402
from lookalike.products.search import ProductSearcher  # noqa: E402


def _reference(query, candidates) -> np.ndarray:
    """Today's matcher (`spatial.spatial_scores`): one matrix product of RootSIFT rows a candidate."""
    return spatial.spatial_scores(query, candidates)


def matched_many(query: spatial.LocalFeatures, candidates) -> list[int]:
    """The inlier counts of `spatial.matched_points` for each candidate, from ONE matrix product of the query's
    RootSIFT rows with every candidate's at once (the query's rows normalised once): the lever measured."""
    query = query.strongest(spatial.MATCH_POINTS)
    kept = [c.strongest(spatial.MATCH_POINTS) for c in candidates]
    usable = [i for i, c in enumerate(kept) if len(c.points) >= 2] if len(query.points) >= 2 else []
    found = [0] * len(kept)
    if not usable:
        return found
    rows = spatial._root_sift(np.concatenate([kept[i].descriptors for i in usable]))
    similarity = spatial._root_sift(query.descriptors) @ rows.T
    source_points, start = query.points.astype(np.float32), 0
    for i in usable:
        end = start + len(kept[i].points)
        good, target = spatial.ratio_matches(similarity[:, start:end])
        start = end
        if len(good) < 4:
            continue
        _, mask = cv2.findHomography(source_points[good], kept[i].points[target].astype(np.float32),
                                     spatial.ESTIMATOR, spatial.RANSAC_PX)
        found[i] = 0 if mask is None else int(mask.sum())
    return found


def _batched(threads: int, estimator: int | None = None, px: float | None = None):
    def call(query, candidates) -> np.ndarray:
        saved = spatial.ESTIMATOR, spatial.RANSAC_PX
        spatial.ESTIMATOR = saved[0] if estimator is None else estimator
        spatial.RANSAC_PX = saved[1] if px is None else px
        try:
            present = [i for i, c in enumerate(candidates) if c is not None]
            counts = np.zeros(len(candidates), np.int64)
            with spatial._blas().limit(limits=threads, user_api="blas"):
                counts[present] = matched_many(query, [candidates[i] for i in present])
            return counts
        finally:
            spatial.ESTIMATOR, spatial.RANSAC_PX = saved

    return call


VARIANTS = {
    "per-candidate (today)": _reference,
    "batched": _batched(1),
    "batched, 2 BLAS threads": _batched(2),
    "batched, USAC_FAST": _batched(1, cv2.USAC_FAST),
    "batched, RANSAC": _batched(1, cv2.RANSAC),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    searcher = ProductSearcher.load(args.index)
    table = searcher.part("local_features").table
    items = from_manifest(args.queries)[args.first :: args.every]
    times: dict[str, list[float]] = {name: [] for name in args.variants}
    counts: dict[str, list[np.ndarray]] = {name: [] for name in args.variants}
    for number, item in enumerate(items):
        photo = load_image(item.path)
        query = spatial.extract(photo, spatial.QUERY_SIDE)
        vector = searcher._queries.embed([photo])[0]
        candidates = table.get(searcher.index.store.search(vector, spatial.TOP_N, None).ids)
        for name in args.variants:
            start = time.perf_counter()
            found = VARIANTS[name](query, candidates)
            if number >= 2:  # the first two warm up
                times[name].append(1000 * (time.perf_counter() - start))
                counts[name].append(found)
    base = args.variants[0]
    reference = np.concatenate(counts[base])
    rows = []
    for name in args.variants:
        ratio = np.asarray(times[name]) / np.asarray(times[base])
        q1, q2, q3 = np.percentile(ratio, [25, 50, 75])
        mine = np.concatenate(counts[name])
        rows.append({"variant": name, "median ms": round(float(np.median(times[name])), 2),
                     "mean ms": round(float(np.mean(times[name])), 2),
                     f"vs {base} (median, IQR)": f"{q2:.2f} ({q1:.2f}-{q3:.2f})",
                     "same count": f"{np.mean(mine == reference):.3f}",
                     "mean |diff|": round(float(np.abs(mine - reference).mean()), 2)})
    text = (f"{len(times[base])} queries from {args.queries} (every {args.every}th from {args.first}), "
            f"{spatial.TOP_N} candidates each, index {args.index}\n\n{markdown_table(rows)}")
    show(text, args.out)


if __name__ == "__main__":
    main()
