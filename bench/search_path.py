"""The whole `ProductSearcher.search` of a re-ranked query (decode to hits, the code a user runs), today's query
path against issue 37's first round (the fp32 query network, keypoints after it), alternated query by query in one
process on one index (issue 37).

    python bench/search_path.py --index IDX --queries QUERIES.csv [--every 20] [--scope all]

Prints each path's p50 / p95 / mean ms and the median per-query ratio (with its IQR). Not a test.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lookalike.products import query_photos  # noqa: E402
from lookalike.products.catalog import from_manifest  # noqa: E402
from lookalike.products.search import ProductSearcher  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--scope", default="all")
    args = parser.parse_args()
    searcher = ProductSearcher.load(args.index)
    today = searcher._queries
    before = copy.copy(searcher.embedder)
    before.flip, before._query_twin = False, None  # round 1: the fp32 network, no mirror image
    paths = {"today": (today, True), "round 1": (before, False)}
    items = from_manifest(args.queries)[args.first :: args.every]
    times: dict[str, list[float]] = {name: [] for name in paths}
    for number, item in enumerate(items):
        order = list(paths) if number % 2 == 0 else list(paths)[::-1]
        for name in order:
            searcher._queries, query_photos.KEYPOINTS_BESIDE = paths[name]
            start = time.perf_counter()
            searcher.search(item.path, 30, args.scope)
            if number >= 3:
                times[name].append(1000 * (time.perf_counter() - start))
    searcher._queries, query_photos.KEYPOINTS_BESIDE = today, True
    ratio = np.asarray(times["today"]) / np.asarray(times["round 1"])
    print(f"{len(ratio)} queries from {args.queries} (every {args.every}th), scope {args.scope}, re-ranking on")
    for name, values in times.items():
        p50, p95 = np.percentile(values, [50, 95])
        print(f"{name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, mean {np.mean(values):.1f} ms")
    q1, q2, q3 = np.percentile(ratio, [25, 50, 75])
    print(f"today / round 1 per query: median {q2:.2f} (IQR {q1:.2f}-{q3:.2f})")


if __name__ == "__main__":
    main()
