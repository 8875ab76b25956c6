"""The whole `ProductSearcher.search` of a re-ranked query (decode to hits, the code a user runs), today's query
path against another, alternated query by query in one process on one index (issue 37): by default issue 37's
first round (the fp32 query network, keypoints after it); with `--lever NAME=VALUE`, today's path with one of
`spatial`'s settings changed (QUERY_SIDE=200, STOP_INLIERS=60: the third round).

    python bench/search_path.py --index IDX --queries QUERIES.csv [--every 20] [--scope all] [--lever NAME=VALUE ...]
    python bench/search_path.py --index IDX --queries QUERIES.csv --spread 100 --lever QUERY_SIDE=200 STOP_INLIERS=60

`--spread N`: the N queries `eval-products` times (spread evenly over the set, after its 3 warm-up queries)
instead of every n-th. Prints each path's p50 / p95 / mean ms and the median per-query ratio (with its IQR), and
the 1-minute load average before and after. Not a test.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lookalike.evaluation.products import WARM_UP_QUERIES, spread  # noqa: E402
from lookalike.products import query_photos, spatial  # noqa: E402
from lookalike.products.catalog import from_manifest  # noqa: E402
from lookalike.products.search import ProductSearcher  # noqa: E402


def _setter(searcher: ProductSearcher, lever: list[str] | None) -> tuple[str, dict]:
    """The other path's name and a function per path that puts its settings in place."""
    today_queries = searcher._queries
    if not lever:
        before = copy.copy(searcher.embedder)
        before.flip, before._query_twin = False, None  # round 1: the fp32 network, no mirror image
        paths = {"today": (today_queries, True), "round 1": (before, False)}

        def put(name: str) -> None:
            searcher._queries, query_photos.KEYPOINTS_BESIDE = paths[name]

        return "round 1", {name: (lambda name=name: put(name)) for name in paths}
    other = {name: None if value == "None" else int(value) for name, value in (one.split("=") for one in lever)}
    today_settings = {name: getattr(spatial, name) for name in other}
    lever = " ".join(lever)
    return lever, {"today": lambda: [setattr(spatial, k, v) for k, v in today_settings.items()],
                   lever: lambda: [setattr(spatial, k, v) for k, v in other.items()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--spread", type=int, help="eval-products' timed queries: N spread over the set")
    parser.add_argument("--scope", default="all")
    parser.add_argument("--lever", nargs="+", help="NAME=VALUE of `spatial` settings for the other path")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    searcher = ProductSearcher.load(args.index)
    other, put = _setter(searcher, args.lever)
    items = from_manifest(args.queries)
    if args.spread:
        items = spread(items, args.spread)
        for item in items[:WARM_UP_QUERIES]:
            searcher.search(item.path, 30, args.scope)
    else:
        items = items[args.first :: args.every]
    times: dict[str, list[float]] = {name: [] for name in put}
    for number, item in enumerate(items):
        order = list(put) if number % 2 == 0 else list(put)[::-1]
        for name in order:
            put[name]()
            start = time.perf_counter()
            searcher.search(item.path, 30, args.scope)
            if args.spread or number >= 3:
                times[name].append(1000 * (time.perf_counter() - start))
    put["today"]()
    ratio = np.asarray(times[other]) / np.asarray(times["today"])
    source = f"{args.spread} spread" if args.spread else f"every {args.every}th from {args.first}"
    print(f"{len(ratio)} queries from {args.queries} ({source}), scope {args.scope}, re-ranking on; "
          f"load average {load:.1f} -> {os.getloadavg()[0]:.1f}")
    for name, values in times.items():
        p50, p95 = np.percentile(values, [50, 95])
        print(f"{name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, mean {np.mean(values):.1f} ms")
    q1, q2, q3 = np.percentile(ratio, [25, 50, 75])
    print(f"{other} / today per query: median {q2:.2f} (IQR {q1:.2f}-{q3:.2f})")


if __name__ == "__main__":
    main()
