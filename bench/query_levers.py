"""Query-time speed levers of a re-ranked product search, scored against today's settings on the same held-out
queries in one run: each query is decoded once, embedded once per mirror setting and its keypoints extracted once
per side, then every variant searches (scope all, re-ranking on) in turn, so the variants' timings are interleaved
query by query and their quality differences are paired (the standard error of a difference is that of the
per-query differences).

A variant sets, at query time only (the index is not rebuilt): whether the query is embedded with its mirror
image (`flip`), the side its SIFT keypoints are extracted at (`side`; the catalog's stay at the index's), how
many of the strongest keypoints of the query and of each candidate are matched (`points`), and how many of the
first candidates are verified (`top_n`, the vote's and the re-ranking's; `stop`: until one has that many inliers,
issue 37's third round); and, from issue 37's second round, whether
the query runs through the network's INT8 twin (`int8`), which matcher verifies (`matcher`: one matrix product a
candidate as before, or one over all candidates), and whether the keypoints are extracted in a thread while the
network embeds (`overlap`: then the "embed ms" column holds both, side by side, and "keypoints ms" is 0).

    python bench/query_levers.py --index IDX --queries QUERIES.csv [--every 1 --first 0] [--variants ...]
        [--out bench/out/levers.md]

Prints, per variant: category top-1, exact-product recall@1 and recall@10, P@10 (each +- its standard error),
the paired difference against the first variant (+- its standard error), the mean time of each stage, and the
median per-query ratio of the whole query's time to the first variant's (with its interquartile range).
Not a test; timings on a loaded machine are only meaningful as these ratios.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lookalike.evaluation.report import markdown_table, show  # noqa: E402
from lookalike.images.loading import load_image  # noqa: E402
from lookalike.products import spatial  # noqa: E402
from lookalike.products.catalog import from_manifest  # noqa: E402
from lookalike.products.parts.keypoints import KeypointCue  # noqa: E402
from lookalike.products.query_photos import KEYPOINTS_BESIDE  # noqa: E402
from lookalike.products.results import QueryCues  # noqa: E402
from lookalike.products.search import ProductSearcher  # noqa: E402
from model_zoo.product_embedders import QUERY_INT8, QUERY_MIRROR  # noqa: E402


@dataclass(frozen=True)
class Variant:
    name: str
    flip: bool = True
    side: int = 348
    points: int = 500
    top_n: int = 20
    int8: bool = False  # the query network's INT8 twin (`ProductEmbedder.for_queries`; no mirror image)
    matcher: str = "per-candidate"  # today's `spatial.spatial_scores`, or "batched" (`bench/match_speed.py`)
    overlap: bool = False  # keypoints extracted in a thread while the network embeds (timed together)
    stop: int | None = None  # the early exit: candidates verified in cosine order until one has this many inliers


#: "before": the settings before issue 37; "today": this code's defaults; the rest: one lever each.
VARIANTS = {
    "before": Variant("before"),
    "today": Variant("today", QUERY_MIRROR, spatial.QUERY_SIDE, spatial.MATCH_POINTS, spatial.TOP_N, QUERY_INT8,
                     overlap=KEYPOINTS_BESIDE, stop=spatial.STOP_INLIERS),
    # the second round's defaults (no mirror, 256 px, keypoints beside the network), then each third-round lever
    "round-2": Variant("round-2", flip=False, side=256, overlap=True),
    "stop-30": Variant("stop-30", flip=False, side=256, overlap=True, stop=30),
    "stop-60": Variant("stop-60", flip=False, side=256, overlap=True, stop=60),
    "stop-100": Variant("stop-100", flip=False, side=256, overlap=True, stop=100),
    "round-2-200": Variant("round-2-200", flip=False, side=200, overlap=True),
    "round-2-224": Variant("round-2-224", flip=False, side=224, overlap=True),
    "side-200-stop-60": Variant("side-200-stop-60", flip=False, side=200, overlap=True, stop=60),
    # the defaults after issue 37's first round (no mirror, 256 px), then each lever of its second round
    "round-1": Variant("round-1", flip=False, side=256),
    "batched": Variant("batched", flip=False, side=256, matcher="batched"),
    "int8": Variant("int8", flip=False, side=256, int8=True),
    "int8-batched": Variant("int8-batched", flip=False, side=256, int8=True, matcher="batched"),
    "int8-batched-overlap": Variant("int8-batched-overlap", flip=False, side=256, int8=True, matcher="batched",
                                    overlap=True),
    "overlap": Variant("overlap", flip=False, side=256, overlap=True),
    "int8-overlap": Variant("int8-overlap", flip=False, side=256, int8=True, overlap=True),
    "no-mirror": Variant("no-mirror", flip=False),
    "side-256": Variant("side-256", side=256),
    "side-200": Variant("side-200", side=200),
    "points-300": Variant("points-300", points=300),
    "top-10": Variant("top-10", top_n=10),
    "combo-mirror": Variant("combo-mirror", side=256, points=300, top_n=10),
    "combo": Variant("combo", flip=False, side=256, points=300, top_n=10),
    "combo-200": Variant("combo-200", flip=False, side=200, points=300, top_n=10),
    "combo-top-20": Variant("combo-top-20", flip=False, side=256, points=300, top_n=20),
    "mirror-top-20": Variant("mirror-top-20", side=256, points=300, top_n=20),
    "no-mirror-256": Variant("no-mirror-256", flip=False, side=256),
    "no-mirror-300": Variant("no-mirror-300", flip=False, points=300),
}


def _ms(start: float) -> float:
    return 1000.0 * (time.perf_counter() - start)


def _matchers() -> dict:
    from bench.match_speed import _batched

    return {"batched": _batched(1), "per-candidate": spatial.spatial_scores}


def run(index: Path, queries: Path, every: int, names: list[str], first: int = 0) -> tuple[list[dict], int]:
    searcher = ProductSearcher.load(index)
    matchers, pool = _matchers(), ThreadPoolExecutor(1)
    if any(VARIANTS[name].int8 for name in names) and not searcher._queries.int8:
        raise SystemExit("the query network has no INT8 twin here (QUERY_INT8 off, or the quantizer failed)")
    part = searcher.part("local_features")
    if part is None:
        raise SystemExit(f"{index} has no keypoints to re-rank with")
    items = from_manifest(queries)[first::every]
    product_ids = {row["product_id"] for row in searcher.index.rows if row["product_id"]}
    variants = [VARIANTS[name] for name in names]
    outcome = {v.name: {"top1": [], "p10": [], "r1": [], "r10": [], "embed": [], "keypoints": [], "search": [],
                        "total": []} for v in variants}
    for item in items[:3]:  # warm-up
        searcher.search(item.path, 30, "all")
    for item in items:
        start = time.perf_counter()
        photo = load_image(item.path)
        decode = _ms(start)
        vectors, extracted, overlapped = {}, {}, {}  # each embedding and extraction once a query, shared
        for variant in variants:
            key = (variant.flip, variant.int8)
            embedder = searcher._queries if variant.int8 else searcher.embedder
            if key not in vectors:
                searcher.embedder.flip = variant.flip
                start = time.perf_counter()
                vectors[key] = embedder.embed([photo])[0], _ms(start)
            if variant.side not in extracted:
                start = time.perf_counter()
                extracted[variant.side] = spatial.extract(photo, variant.side), _ms(start)
            vector, embed = vectors[key]
            features, keypoints = extracted[variant.side]
            if variant.overlap:  # the same vector and keypoints, the two made side by side
                if (key, variant.side) not in overlapped:
                    start = time.perf_counter()
                    future = pool.submit(spatial.extract, photo, variant.side)
                    embedder.embed([photo])
                    future.result()
                    overlapped[key, variant.side] = _ms(start)
                embed, keypoints = overlapped[key, variant.side], 0.0
            spatial.MATCH_POINTS, spatial.TOP_N, spatial.STOP_INLIERS = variant.points, variant.top_n, variant.stop
            spatial.spatial_scores = matchers[variant.matcher]
            start = time.perf_counter()
            result = searcher.search_vector(vector, 30, "all", QueryCues({part.name: KeypointCue(features)}))
            search = _ms(start)
            record = outcome[variant.name]
            record["embed"].append(decode + embed)
            record["keypoints"].append(keypoints)
            record["search"].append(search)
            record["total"].append(decode + embed + keypoints + search)
            record["top1"].append(result.categories[0][0] == item.category)
            record["p10"].append(np.mean([hit.category == item.category for hit in result.results[:10]]))
            if item.product_id in product_ids:
                ranks = [i for i, hit in enumerate(result.results) if hit.product_id == item.product_id]
                rank = ranks[0] if ranks else len(result.results)
                record["r1"].append(rank < 1)
                record["r10"].append(rank < 10)
    searcher.embedder.flip = True
    today = VARIANTS["today"]
    spatial.MATCH_POINTS, spatial.TOP_N, spatial.STOP_INLIERS = today.points, today.top_n, today.stop
    spatial.spatial_scores = matchers["per-candidate"]
    return _table(outcome, variants[0].name), len(items)


def _se(values) -> float:
    values = np.asarray(values, np.float64)
    return float(values.std() / np.sqrt(len(values))) if len(values) else float("nan")


def _table(outcome: dict, base: str) -> list[dict]:
    rows = []
    for name, record in outcome.items():
        row = {"variant": name}
        for key, label in (("top1", "top1"), ("r1", "recall@1"), ("r10", "recall@10"), ("p10", "P@10")):
            values, reference = np.asarray(record[key], float), np.asarray(outcome[base][key], float)
            row[label] = f"{values.mean():.3f} ± {_se(values):.3f}"
            row[f"{label} diff"] = f"{values.mean() - reference.mean():+.3f} ± {_se(values - reference):.3f}"
        for stage in ("embed", "keypoints", "search", "total"):
            row[f"{stage} ms"] = round(float(np.mean(record[stage])), 1)
        ratio = np.asarray(record["total"]) / np.asarray(outcome[base]["total"])
        q1, q2, q3 = np.percentile(ratio, [25, 50, 75])
        row["time vs today (median, IQR)"] = f"{q2:.2f} ({q1:.2f}-{q3:.2f})"
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True, help="held-out queries' manifest (CSV)")
    parser.add_argument("--every", type=int, default=1, help="every n-th query only (a spread subset)")
    parser.add_argument("--first", type=int, default=0, help="the first query of that subset (0: the first)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows, count = run(args.index, args.queries, args.every, args.variants, args.first)
    text = f"{count} queries from {args.queries}, index {args.index}, scope all, re-ranking on\n\n"
    text += markdown_table(rows)
    show(text, args.out)


if __name__ == "__main__":
    main()
