"""Does the in-catalog decision keep known queries calibrated? (issue 38)

The protocol of `bench/similarity_calibration.py` (the demo catalog's held-out photos, 30 hits each, scope all,
no re-ranking) searched by an index and by its copy without the `open_set` part, query by query in one process;
ECE of the shown similarity for both, with a bootstrap standard error over queries (each query's hits kept
together) and the paired difference. Several indexes (`--index A B --without A_COPY B_COPY`, e.g. built before
and after a change) are searched by the same queries, and each later one is compared with the first, paired.
`--unknown` adds the test half of `bench/open_set_demo.py`'s out-of-catalog photos (the shared Myntra photos):
their reliability table (no hit shares their kind, so every bin's share is 0) and their top hit's median
shown similarity. `--query-mirror` embeds the queries with their mirror image as well (as search did before
issue 37), to tell the decision's share of a calibration gap from the query embedding's.

    python bench/open_set_calibration.py --index IDX [IDX2 ...] --without COPY [COPY2 ...] [--unknown]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

from bench.demo_catalog import held_out  # noqa: E402
from bench.similarity_calibration import reliability  # noqa: E402
from lookalike.evaluation.report import show  # noqa: E402
from lookalike.products.catalog import CatalogItem  # noqa: E402
from lookalike.products.search import ProductSearcher  # noqa: E402

RESAMPLES = 1000
TABLE = ["| score bin | hits | mean score | share of the query's category ± SE |", "|---|---|---|---|"]


def _ece(per_query: list[np.ndarray]) -> float:
    hits = np.concatenate(per_query)
    return reliability(hits[:, 0], hits[:, 1].astype(bool))[1]


def _searched(searchers: dict[str, ProductSearcher], items: list[CatalogItem]) -> tuple[dict, dict]:
    """Per searcher: each query's [similarity, same category] rows, and how many queries it flagged."""
    per: dict[str, list[np.ndarray]] = {name: [] for name in searchers}
    flagged = dict.fromkeys(searchers, 0)
    for item in items:
        for name, searcher in searchers.items():
            found = searcher.search(item.path, top_k=30, scope="all", rerank=False, read_text=False)
            per[name].append(np.array([[h.similarity, h.category == item.category] for h in found.results], float))
            flagged[name] += found.in_catalog is False
    return per, flagged


def _paired(first: list[np.ndarray], second: list[np.ndarray], draws: list[np.ndarray]) -> str:
    diffs = [_ece([second[i] for i in d]) - _ece([first[i] for i in d]) for d in draws]
    return f"{_ece(second) - _ece(first):+.4f} ± {np.std(diffs, ddof=1):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, nargs="+", required=True, help="indexes with the open_set part")
    parser.add_argument("--without", type=Path, nargs="+", required=True, help="their copies without open_set")
    parser.add_argument("--unknown", action="store_true", help="also the out-of-catalog photos (test half)")
    parser.add_argument("--query-mirror", action="store_true", help="embed queries with their mirror image too")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if len(args.index) != len(args.without):
        parser.error("one --without copy per --index")
    if args.query_mirror:
        import model_zoo.product_embedders as product_embedders

        product_embedders.QUERY_MIRROR = True  # read when a searcher loads its query embedder
    searchers: dict[str, ProductSearcher] = {}
    for number, (index, without) in enumerate(zip(args.index, args.without, strict=True), 1):
        searchers[f"{number} with"] = ProductSearcher.load(index)
        searchers[f"{number} without"] = ProductSearcher.load(without, searchers[f"{number} with"].embedder)
    items = held_out(REPO_ROOT / "assets" / "demo_catalog")
    started = time.perf_counter()
    per, flagged = _searched(searchers, items)
    rng = np.random.default_rng(0)
    draws = [rng.integers(0, len(items), len(items)) for _ in range(RESAMPLES)]
    lines = [f"{len(items)} known queries in {time.perf_counter() - started:.0f} s; queries "
             f"{'with' if args.query_mirror else 'without'} the mirror image; indexes: "
             + ", ".join(f"{n} {path}" for n, path in enumerate(args.index, 1))]
    for name, queries in per.items():
        hits = np.concatenate(queries)
        rows, ece = reliability(hits[:, 0], hits[:, 1].astype(bool))
        spread = np.std([_ece([queries[i] for i in draw]) for draw in draws], ddof=1)
        lines += [f"== {name} the decision: ECE {ece:.4f} ± {spread:.4f}; known flagged {flagged[name]}",
                  *TABLE, *rows]
    for number in range(1, len(args.index) + 1):
        lines.append(f"paired, index {number} with - without: "
                     f"{_paired(per[f'{number} without'], per[f'{number} with'], draws)}")
        if number > 1:
            for side in ("with", "without"):
                lines.append(f"paired, index {number} - index 1, {side} the decision: "
                             f"{_paired(per[f'1 {side}'], per[f'{number} {side}'], draws)}")
    if args.unknown:
        from bench.open_set_demo import queries as demo_queries

        unknown = demo_queries("test", None)[1]
        outside, flagged = _searched(searchers, unknown)
        lines.append(f"== {len(unknown)} out-of-catalog queries (test half): no hit shares their kind")
        for name, queries in outside.items():
            hits = np.concatenate(queries)
            top = np.median([query[0, 0] for query in queries])
            lines += [f"-- {name} the decision: mean shown similarity (its ECE) {hits[:, 0].mean():.4f}; median top "
                      f"hit {top:.3f}; flagged {flagged[name] / len(unknown):.3f}", *TABLE,
                      *reliability(hits[:, 0], hits[:, 1].astype(bool))[0]]
    show("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
