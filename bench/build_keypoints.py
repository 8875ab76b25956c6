"""The catalog's keypoints at a smaller side at build time (issue 37): extraction time and held-out quality.

For an index built by the default command, each variant extracts every catalog photo's SIFT keypoints again at
its side (`spatial.extract`), with its RANSAC threshold (in the catalog photo's pixels), and everything else of
the index stays as built. The protocol's queries are embedded and their keypoints extracted once (at
`spatial.QUERY_SIDE`, as search does), then searched against each variant's keypoints with re-ranking in scope
all, as `eval-products` scores them: category top-1, P@10, exact-product recall@1 / @10, each ± its standard
error, and the paired difference to the first variant ± its standard error (the same queries).

Extraction time: each variant's whole table is extracted in 2 threads (as the build does), and a sample of
photos is extracted at every side in turn, photo by photo (interleaved: the ratios hold on a shared machine).

    python bench/build_keypoints.py --index idx_half --queries split/queries.csv --variants 348 256 256s
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from lookalike.evaluation.retrieval import precision_at_k
from lookalike.images.loading import load_image
from lookalike.products import local_features, spatial
from lookalike.products.catalog import read_catalog
from lookalike.products.embedding import embed_catalog
from lookalike.products.parts.keypoints import KeypointCue
from lookalike.products.results import QueryCues
from lookalike.products.search import ProductSearcher

TODAY = 348  # the catalog side before issue 37's build work, whose RANSAC threshold is RANSAC_PX


def variant(name: str) -> tuple[int, float]:
    """"256": keypoints at 256 px, RANSAC 5 px of that photo; "256s": the threshold scaled with the side."""
    side = int(name.rstrip("s"))
    return side, 5.0 * (side / TODAY if name.endswith("s") else 1.0)


def extract_table(searcher: ProductSearcher, side: int, folder: Path) -> tuple[local_features.LocalFeatureTable, float]:
    """Every catalog row's keypoints at `side` into `folder`/local (2 threads, as the build); and the seconds."""
    rows = list(searcher.index.rows)
    original = local_features.extract
    local_features.extract = lambda image: spatial.extract(image, side)
    try:
        begun = time.perf_counter()
        local_features.write_local_features(folder, [row["id"] for row in rows], [Path(row["path"]) for row in rows])
        seconds = time.perf_counter() - begun
    finally:
        local_features.extract = original
    return local_features.LocalFeatureTable(folder), seconds


def interleaved(paths: list[Path], sides: list[int]) -> dict[int, float]:
    """Milliseconds a photo (decode + extraction, one thread) at each side, the sides alternated photo by photo."""
    spent = dict.fromkeys(sides, 0.0)
    for number, path in enumerate(paths):
        for side in sides[number % len(sides):] + sides[: number % len(sides)]:
            begun = time.perf_counter()
            spatial.extract(load_image(path), side)
            spent[side] += time.perf_counter() - begun
    return {side: round(1000 * value / len(paths), 2) for side, value in spent.items()}


def scores(searcher: ProductSearcher, items: list, vectors: np.ndarray, cues: list[QueryCues]) -> dict[str, np.ndarray]:
    """Per query: category right, P@10, and the exact product's rank (queries whose product is in the catalog)."""
    product_ids = {row["product_id"] for row in searcher.index.rows if row["product_id"]}
    top1, p10, ranks = [], [], []
    for item, vector, base in zip(items, vectors, cues, strict=True):
        fresh = QueryCues({k: KeypointCue(v.features) if isinstance(v, KeypointCue) else v for k, v in base.items()})
        result = searcher.search_vector(vector, 30, "all", fresh)
        top1.append(result.categories[0][0] == item.category)
        p10.append(precision_at_k([hit.category == item.category for hit in result.results[:30]], 10))
        if item.product_id in product_ids:
            found = [i for i, hit in enumerate(result.results) if hit.product_id == item.product_id]
            ranks.append(found[0] if found else len(result.results))
    ranks = np.asarray(ranks)
    return {"top1": np.asarray(top1, float), "p10": np.asarray(p10, float), "recall1": (ranks < 1).astype(float),
            "recall10": (ranks < 10).astype(float)}


def _se(values: np.ndarray) -> float:
    return float(values.std() / np.sqrt(len(values)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--variants", nargs="+", default=["348", "256", "256s"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/build_keypoints"))
    parser.add_argument("--sample", type=int, default=200, help="photos timed interleaved")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    searcher = ProductSearcher.load(args.index)
    part = searcher.part("local_features")
    queries = read_catalog(args.queries)
    embedded = embed_catalog(queries, searcher.embedder.for_queries(), show_bar=False)
    cues = [searcher.query_cues(load_image(item.path), vector, True, False)
            for item, vector in zip(embedded.items, embedded.vectors, strict=True)]
    rows = list(searcher.index.rows)
    sample = [Path(rows[i]["path"]) for i in np.linspace(0, len(rows) - 1, min(args.sample, len(rows))).astype(int)]
    sides = sorted({variant(name)[0] for name in args.variants}, reverse=True)
    report: dict = {"index": str(args.index), "queries": len(embedded.items), "load": [os.getloadavg()[0]],
                    "ms_a_photo_interleaved": interleaved(sample, sides), "variants": {}}
    first = None
    saved = spatial.RANSAC_PX
    for name in args.variants:
        side, ransac = variant(name)
        table, seconds = extract_table(searcher, side, args.work / f"{args.index.name}_{side}")
        part.table = table
        spatial.RANSAC_PX = ransac
        try:
            found = scores(searcher, embedded.items, embedded.vectors, cues)
        finally:
            spatial.RANSAC_PX = saved
        first = first or found
        entry = {"side": side, "ransac_px": round(ransac, 2), "extract_seconds_2_threads": round(seconds, 1),
                 "points_a_photo": round(float(np.diff(table._arrays["offsets"]).mean()), 1)}
        for key, values in found.items():
            diff = values - first[key]
            entry[key] = {"value": round(float(values.mean()), 4), "se": round(_se(values), 4),
                          "diff": round(float(diff.mean()), 4), "diff_se": round(_se(diff), 4), "n": len(values)}
        report["variants"][name] = entry
        report["load"].append(os.getloadavg()[0])
        print(name, json.dumps(entry), flush=True)
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    sys.exit(main())
