"""Warm product query latency with spatial re-ranking (and, on an index built with `--read-text`, with the
printed words read too) against the pipeline without either, in the same run.

The index is the instance-retrieval protocol's (`bench/protocol.py`: every shared photo but the GroceryStore
val photos, built with `--local-features`); the queries are those val photos, sent one at a time as a user
sends them (decode, embed, categorize, search, and with re-ranking: keypoints, the verified category vote
and the verification of the first hits; with words: the query's OCR and the words' vote). Rows per scope:
p50 / p95 / mean ms, the ratio of p50 to the pipeline without re-ranking, and the mean of each stage
(`SearchResult.timings_ms`; "embed" holds the query's keypoints and words too).

    python bench/rerank_latency.py [--index DIR] [--queries 100] [--out bench/out/rerank.md]

Without `--index`, the index is built in a temporary folder first (embeddings come from the cache when an
earlier build made them). Not a test: compare the ratios, measured side by side.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

from bench.protocol import grocery_val_split  # noqa: E402
from lookalike.evaluation.products import spread  # noqa: E402
from lookalike.evaluation.report import markdown_table  # noqa: E402
from lookalike.products.build import build_index  # noqa: E402
from lookalike.products.search import ProductSearcher  # noqa: E402

WARM_UP = 3
STAGES = ("embed", "categorize", "search", "rerank")


def timed(searcher: ProductSearcher, queries: list[Path], scope: str, rerank: bool, read_text: bool = False) -> dict:
    for query in queries[:WARM_UP]:
        searcher.search(query, 30, scope, rerank, read_text)
    times, stages = [], {stage: [] for stage in STAGES}
    for query in queries:
        start = time.perf_counter()
        result = searcher.search(query, 30, scope, rerank, read_text)
        times.append(1000.0 * (time.perf_counter() - start))
        for stage in STAGES:
            stages[stage].append(result.timings_ms.get(stage, 0.0))
    return {
        "scope": scope,
        "pipeline": ("re-ranking" if rerank else "without re-ranking") + (" + printed words" if read_text else ""),
        "p50_ms": round(float(np.percentile(times, 50)), 1),
        "p95_ms": round(float(np.percentile(times, 95)), 1),
        "mean_ms": round(float(np.mean(times)), 1),
        **{f"{stage}_ms": round(float(np.mean(values)), 1) for stage, values in stages.items()},
    }


def render(rows: list[dict], note: str) -> str:
    return f"# Warm product query latency, with and without re-ranking\n\n{note}\n\n{markdown_table(rows)}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, help="an index of the protocol's catalog with local features")
    parser.add_argument("--queries", type=int, default=100, help="val photos timed (spread evenly)")
    parser.add_argument("--out", type=Path, help="also write the table as Markdown here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        catalog, _, queries = grocery_val_split(Path(tmp))
        index = args.index
        if index is None:
            index = Path(tmp) / "index"
            build_index(catalog, index, local_features=True, show_bar=False)
        searcher = ProductSearcher.load(index)
        if searcher.part("local_features") is None:
            parser.error(f"{index} has no local features: build it with --local-features")
        sample = spread(queries, args.queries)
        rows = []
        for scope in ("category", "all", "blend"):
            plain, verified = timed(searcher, sample, scope, False), timed(searcher, sample, scope, True)
            verified["p50 vs without"] = round(verified["p50_ms"] / plain["p50_ms"], 2)
            plain["p50 vs without"] = 1.0
            rows += [plain, verified]
            if searcher.part("words") is not None:
                read = timed(searcher, sample, scope, True, True)
                read["p50 vs without"] = round(read["p50_ms"] / plain["p50_ms"], 2)
                rows.append(read)
    note = (f"{searcher.index.manifest.items} catalog photos ({searcher.model}), {len(sample)} GroceryStore val "
            f"queries, one at a time after {WARM_UP} warm-up queries; stage columns are means.")
    table = render(rows, note)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
