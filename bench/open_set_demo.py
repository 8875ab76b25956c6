"""The in-catalog decision on the demo catalog: held-out photos of its kinds against products it does not sell.

Why: a visitor of the hosted demo tries anything; the search must say when the photo is not something the
catalog sells (docs/product-search.md, "Nothing like this in the catalog"). Known queries: every clothing and
grocery photo of the shared data the demo catalog does not hold (`bench.demo_catalog.held_out`); unknown: every
shared Myntra photo (watches, belts, sunglasses, wallets, ...; never in the demo catalog). Each list is split in
alternate halves, "dev" (what the cues were chosen on) and "test" (what is reported); `--sample N` takes N of
each, spread evenly, for a tuned index whose queries are not in the embedding cache. The index is compared
with the same index without the decision (`--without`: a copy whose manifest lacks `open_set`), in one run:
category top-1 and P@10 (scope category), ECE of the shown similarity (scope all, 30 hits, the bins of
bench/similarity_calibration.py), warm p50 of whole queries alternated between the two, and the search's own
time from a stored vector (200 queries, alternated as well).

    python bench/open_set_demo.py --index IDX --without IDX_COPY [--half test] [--sample 300] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

from bench.demo_catalog import held_out  # noqa: E402
from lookalike.evaluation.open_set import expected_calibration_error, open_set_quality, searched  # noqa: E402
from lookalike.evaluation.products import quality, spread  # noqa: E402
from lookalike.paths import data_dir  # noqa: E402
from lookalike.products.catalog import CatalogItem  # noqa: E402
from lookalike.products.embedding import embed_catalog  # noqa: E402
from lookalike.products.search import ProductSearcher  # noqa: E402

TIMED = 40


def queries(half: str, sample: int | None) -> tuple[list[CatalogItem], list[CatalogItem]]:
    known = held_out(REPO_ROOT / "assets" / "demo_catalog")
    with (data_dir() / "products_manifest.csv").open(newline="") as handle:
        unknown = [CatalogItem(data_dir() / "products" / row["file"], row["category"])
                   for row in csv.DictReader(handle) if row["source"] == "fashion-product-images-small"]
    pick = {"dev": slice(0, None, 2), "test": slice(1, None, 2), "all": slice(None)}[half]
    known, unknown = known[pick], unknown[pick]
    return (spread(known, sample), spread(unknown, sample)) if sample else (known, unknown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--without", type=Path, required=True, help="the same index without its open_set entry")
    parser.add_argument("--half", choices=("dev", "test", "all"), default="test")
    parser.add_argument("--sample", type=int, help="queries of each side, spread evenly (default: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with_part = ProductSearcher.load(args.index)
    without = ProductSearcher.load(args.without, with_part.embedder)
    known_items, unknown_items = queries(args.half, args.sample)
    queries_embedder = with_part.embedder.for_queries()  # as search embeds a query photo
    known = embed_catalog(known_items, queries_embedder, show_bar=False)
    unknown = embed_catalog(unknown_items, queries_embedder, show_bar=False)
    report = {"half": args.half, "known_queries": len(known.items), "unknown_queries": len(unknown.items),
              "open_set": open_set_quality(with_part, (known.items, known.vectors, None),
                                           (unknown.items, unknown.vectors, None), 30, "all")}
    for name, searcher in (("with", with_part), ("without", without)):
        scored = quality(searcher, known.items, known.vectors, 30, "category")
        report[name] = {key: scored[key] for key in ("top1_accuracy", "top1_accuracy_se", "precision_at_10",
                                                       "precision_at_10_se")}
    hits = np.concatenate(searched(without, known.items, known.vectors, 30, "all", None)[3])
    report["without"]["similarity_ece_known"] = expected_calibration_error(hits[:, 0], hits[:, 1])
    report["without"]["unknown_top_similarity_median"] = float(np.median(
        searched(without, unknown.items, unknown.vectors, 30, "all", None)[2]))
    timed, times = spread(known.items, TIMED), {"with": [], "without": []}
    for searcher in (with_part, without):
        for item in timed[:3]:
            searcher.search(item.path, 30, "category", False, False)
    for item in timed:  # alternated, so both see the same load
        for name, searcher in (("with", with_part), ("without", without)):
            start = time.perf_counter()
            searcher.search(item.path, 30, "category", False, False)
            times[name].append(1000 * (time.perf_counter() - start))
    stored = {"with": [], "without": []}
    for vector in known.vectors[:200]:  # alternated too
        for name, searcher in (("with", with_part), ("without", without)):
            start = time.perf_counter()
            searcher.search_vector(vector, 30, "category")
            stored[name].append(1000 * (time.perf_counter() - start))
    for name in ("with", "without"):
        report[name]["latency_ms_p50"] = float(np.median(times[name]))
        report[name]["search_vector_ms_mean"] = float(np.mean(stored[name]))
        report[name]["search_vector_ms_p50"] = float(np.median(stored[name]))
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
