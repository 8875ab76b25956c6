"""When and how long to tune the backbone at build time: the study behind `lookalike.products.tuning_policy`.

One frozen pass over every shared product photo (and its mirror image), then each variant tunes the last
stages on a catalog drawn from the half split's catalog half and is scored on the query half (1,767 photos,
never tuned on), against the frozen backbone on the same catalog: category top-1 of the build's logistic head,
exact-product recall@1 / @10 (grocery queries whose product is in the catalog) and P@10 over the whole catalog,
each with its standard error. No re-ranking, words or second view: this isolates the embedding.

    python bench/tuning_study.py                  # epochs 1-4 on the whole catalog half, then sizes
    python bench/tuning_study.py --per-category 5 10 20 30 --epochs 2

Figures and the choices made from them: docs/experiments/backbone-tuning.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from lookalike.paths import data_dir
from lookalike.products.backbone_tuning import FrozenMaps, Tail, tail_vectors, train_tail
from lookalike.products.catalog import CatalogItem, read_catalog
from lookalike.products.heads import CategoryHead
from lookalike.products.splits import split_items
from lookalike.products.tuning import frozen_catalog
from lookalike.products.tuning_policy import TuneConfig
from model_zoo.product_embedders import create_embedder
from model_zoo.registry import DEFAULT_PRODUCT_MODEL


def proportion(values: list[bool]) -> dict:
    p = float(np.mean(values)) if values else float("nan")
    return {"value": round(p, 4), "se": round(float(np.sqrt(p * (1 - p) / max(len(values), 1))), 4), "n": len(values)}


def mean(values: np.ndarray) -> dict:
    return {"value": round(float(values.mean()), 4), "se": round(float(values.std() / np.sqrt(len(values))), 4),
            "n": len(values)}


def scores(catalog_vectors: np.ndarray, catalog: list[CatalogItem], query_vectors: np.ndarray,
           queries: list[CatalogItem]) -> dict:
    """Category top-1 (the build's head, fitted on the catalog), recall@1/@10 and P@10 in scope all."""
    labels = [item.category for item in catalog]
    head = CategoryHead.fit(catalog_vectors, labels)
    predicted = np.asarray(head.classes)[head.predict_proba(query_vectors).argmax(axis=1)]
    order = np.argsort(-(query_vectors @ catalog_vectors.T), axis=1)[:, :10]
    categories = np.asarray(labels)
    products = np.asarray([item.product_id or "" for item in catalog])
    present = set(products) - {""}
    findable = [i for i, q in enumerate(queries) if q.product_id and q.product_id in present]
    return {
        "category_top1": proportion([p == q.category for p, q in zip(predicted, queries, strict=True)]),
        "recall@1": proportion([products[order[i, 0]] == queries[i].product_id for i in findable]),
        "recall@10": proportion([queries[i].product_id in set(products[order[i]]) for i in findable]),
        "p@10_all": mean(np.mean(categories[order] == np.asarray([q.category for q in queries])[:, None], axis=1)),
    }


def subset(frozen: FrozenMaps, rows: list[int]) -> FrozenMaps:
    return FrozenMaps(frozen.maps[rows], frozen.mirrored[rows], [frozen.kept[r] for r in rows], [])


def per_category(items: list[CatalogItem], count: int) -> list[int]:
    """The first `count` photos of each category, evenly spread over its sorted photos."""
    by_category: dict[str, list[int]] = defaultdict(list)
    for number, item in enumerate(items):
        by_category[item.category].append(number)
    chosen = []
    for numbers in by_category.values():
        step = max(len(numbers) / count, 1.0)
        chosen += sorted({numbers[int(i * step)] for i in range(min(count, len(numbers)))})
    return sorted(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the whole-catalog run (scored after each)")
    parser.add_argument("--per-category", type=int, nargs="*", default=[5, 10, 20, 30],
                        help="catalog sizes (photos per category) for the frozen-vs-tuned rule")
    parser.add_argument("--size-epochs", type=int, default=2, help="epochs of the per-category runs")
    parser.add_argument("--blocks", type=int, default=TuneConfig.blocks)
    parser.add_argument("--out", type=Path, default=Path("bench/out/tuning_study.json"))
    args = parser.parse_args()

    items = read_catalog(data_dir() / "products", data_dir() / "products_manifest.csv")
    catalog, queries = split_items(items)
    photos = catalog + queries
    embedder = create_embedder(DEFAULT_PRODUCT_MODEL, backend="torch")
    base = Tail(copy.deepcopy(embedder.model), args.blocks).eval()
    started = time.perf_counter()
    read = frozen_catalog(photos, embedder, base, "cpu")  # decoded as a build's tuning decodes them
    assert not read.skipped, read.skipped
    frozen = read.frozen
    report: dict = {"frozen_pass_seconds": round(time.perf_counter() - started, 1), "photos": len(photos)}
    print(report, flush=True)
    query_maps = subset(frozen, list(range(len(catalog), len(photos))))

    def evaluate(tail: Tail, rows: list[int]) -> dict:
        chosen = [catalog[r] for r in rows]
        return scores(tail_vectors(tail, subset(frozen, rows), "cpu"), chosen, tail_vectors(tail, query_maps, "cpu"),
                      queries)

    def tune(rows: list[int], epochs: int, on_epoch=None) -> tuple[dict, Tail]:
        tail = Tail(copy.deepcopy(embedder.model), args.blocks)
        chosen = [catalog[r] for r in rows]
        config = replace(TuneConfig(), blocks=args.blocks, epochs=epochs)
        return train_tail(tail, subset(frozen, rows).maps, [i.category for i in chosen],
                          [i.product_id for i in chosen], config, on_epoch=on_epoch), tail

    everything = list(range(len(catalog)))
    report["whole"] = {"frozen": evaluate(base, everything), "epochs": {}}
    print(json.dumps(report["whole"]["frozen"]), flush=True)

    def scored(epoch: int, tail: Tail) -> None:
        report["whole"]["epochs"][epoch] = evaluate(tail, everything)
        print(epoch, json.dumps(report["whole"]["epochs"][epoch]), flush=True)

    if args.epochs:
        report["whole"]["log"] = tune(everything, args.epochs, scored)[0]
    report["sizes"] = {}
    for count in args.per_category:
        rows = per_category(catalog, count)
        entry = {"photos": len(rows), "products_2plus": sum(1 for c in Counter(
            catalog[r].product_id for r in rows if catalog[r].product_id).values() if c >= 2),
                 "frozen": evaluate(base, rows)}
        entry["log"], tail = tune(rows, args.size_epochs)
        entry["tuned"] = evaluate(tail, rows)
        # the catalog grown to the whole half, its vectors from this smaller catalog's tuning (a stale update)
        entry["whole_catalog_with_this_tuning"] = evaluate(tail, everything)
        report["sizes"][count] = entry
        shown = ("photos", "frozen", "tuned", "whole_catalog_with_this_tuning")
        print(count, json.dumps({k: entry[k] for k in shown}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
