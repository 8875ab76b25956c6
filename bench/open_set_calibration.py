"""Does the in-catalog decision keep known queries calibrated? (issue 38)

The protocol of `bench/similarity_calibration.py` (the demo catalog's held-out photos, 30 hits each, scope all,
no re-ranking) searched by an index and by its copy without the `open_set` part, query by query in one process;
ECE of the shown similarity for both, with a bootstrap standard error over queries (each query's hits kept
together) and the paired difference. `--query-mirror` embeds the queries with their mirror image as well (as
search did before issue 37), to tell the decision's share of a calibration gap from the query embedding's.

    python bench/open_set_calibration.py --index IDX --without IDX_WITHOUT_OPEN_SET [--query-mirror]
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
from lookalike.products.search import ProductSearcher  # noqa: E402

RESAMPLES = 1000


def _ece(per_query: list[np.ndarray]) -> float:
    hits = np.concatenate(per_query)
    return reliability(hits[:, 0], hits[:, 1].astype(bool))[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True, help="an index with the open_set part")
    parser.add_argument("--without", type=Path, required=True, help="a copy whose manifest lacks open_set")
    parser.add_argument("--query-mirror", action="store_true", help="embed queries with their mirror image too")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.query_mirror:
        import model_zoo.product_embedders as product_embedders

        product_embedders.QUERY_MIRROR = True  # read when a searcher loads its query embedder
    searchers = {"with": ProductSearcher.load(args.index)}
    searchers["without"] = ProductSearcher.load(args.without, searchers["with"].embedder)
    items = held_out(REPO_ROOT / "assets" / "demo_catalog")
    per: dict[str, list[np.ndarray]] = {name: [] for name in searchers}
    flagged, started = 0, time.perf_counter()
    for item in items:
        for name, searcher in searchers.items():
            found = searcher.search(item.path, top_k=30, scope="all", rerank=False, read_text=False)
            per[name].append(np.array([[h.similarity, h.category == item.category] for h in found.results], float))
            flagged += name == "with" and found.in_catalog is False
    rng = np.random.default_rng(0)
    draws = [rng.integers(0, len(items), len(items)) for _ in range(RESAMPLES)]
    lines = [f"{len(items)} known queries in {time.perf_counter() - started:.0f} s; flagged {flagged}; "
             f"queries {'with' if args.query_mirror else 'without'} the mirror image"]
    for name, queries in per.items():
        hits = np.concatenate(queries)
        rows, ece = reliability(hits[:, 0], hits[:, 1].astype(bool))
        spread = np.std([_ece([queries[i] for i in draw]) for draw in draws], ddof=1)
        lines += [f"== {name} the decision: ECE {ece:.4f} ± {spread:.4f}",
                  "| score bin | hits | mean score | share of the query's category ± SE |", "|---|---|---|---|", *rows]
    diffs = [_ece([per["with"][i] for i in d]) - _ece([per["without"][i] for i in d]) for d in draws]
    lines.append(f"paired difference with - without: {_ece(per['with']) - _ece(per['without']):+.4f} ± "
                 f"{np.std(diffs, ddof=1):.4f}")
    show("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
