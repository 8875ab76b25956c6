"""Choose the product embedder by measurement: backbone x input size x resize policy x flip TTA.

Each category of the shared products is split half/half (`lookalike.products.splits`); the catalog
half trains the category head, the query half is scored with exact search (no ANN, so only the
features and the head are compared): head top-1, P@10 with scope all and category, mAP@30.
Features are kept in `cache_dir()/bench_features`, so adding a config only embeds that config.

    python bench/product_models.py [--per-category 40] [--configs efficientnet_lite0:224:squash ...]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

from lookalike.evaluation.retrieval import average_precision_at_k, precision_at_k
from lookalike.images.loading import load_image
from lookalike.paths import cache_dir, data_dir
from lookalike.products.catalog import CatalogItem, read_catalog
from lookalike.products.heads import DEFAULT_C, CategoryHead
from lookalike.products.splits import split_items
from model_zoo.product_embedders import create_embedder

DEFAULT_CONFIGS = (
    "efficientnet_lite0:224:squash",
    "efficientnet_lite0:224:pad",
    "efficientnet_lite0:224:crop",
    "efficientnet_lite0:288:squash",
    "efficientnet_lite1:240:squash",
    "efficientnet_lite2:260:squash",
)


def features(config: str, paths: list, tag: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(plain, mirrored) unit features of `paths`, and seconds per image for one plain pass."""
    name, size, resize = config.split(":")
    folder = cache_dir() / "bench_features"
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{config.replace(':', '_')}_{tag}.npz"
    if file.is_file():
        with np.load(file) as data:
            return data["plain"], data["mirrored"], float(data["seconds"])
    embedder = create_embedder(name, size=int(size), flip=False, resize=resize)
    images = [load_image(p) for p in paths]
    start = time.perf_counter()
    plain = embedder.embed(images)
    seconds = (time.perf_counter() - start) / len(images)
    mirrored = embedder.embed([im.transpose(0) for im in images])  # 0 = FLIP_LEFT_RIGHT
    np.savez(file, plain=plain, mirrored=mirrored, seconds=seconds)
    return plain, mirrored, seconds


def first_per_category(items: list[CatalogItem], count: int) -> list[CatalogItem]:
    seen: Counter[str] = Counter()
    kept = []
    for item in items:
        seen[item.category] += 1
        if seen[item.category] <= count:
            kept.append(item)
    return kept


def scores(
    catalog: np.ndarray, cat_labels: list[str], queries: np.ndarray, q_labels: list[str], c: float
) -> dict:
    head = CategoryHead.fit(catalog, cat_labels, c)
    predicted = np.asarray(head.classes)[head.predict_proba(queries).argmax(axis=1)]
    cat_labels_arr = np.asarray(cat_labels)
    similarity = queries @ catalog.T
    row: dict[str, float] = {"top1": float(np.mean(predicted == np.asarray(q_labels)))}
    for scope in ("all", "category"):
        p10, ap30 = [], []
        for i, label in enumerate(q_labels):
            sims = similarity[i]
            if scope == "category":
                sims = np.where(cat_labels_arr == predicted[i], sims, -9)
            order = np.argsort(-sims)[:30]
            order = order[sims[order] > -9]
            relevant = list(cat_labels_arr[order] == label)
            p10.append(precision_at_k(relevant, 10))
            ap30.append(average_precision_at_k(relevant, 30, int(np.sum(cat_labels_arr == label))))
        row[f"p10_{scope}"], row[f"map30_{scope}"] = float(np.mean(p10)), float(np.mean(ap30))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-category", type=int, default=0, help="first N photos per category (0: all)")
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="MODEL:SIZE:RESIZE")
    parser.add_argument("--c", type=float, nargs="+", default=[DEFAULT_C], help="head regularisation values")
    args = parser.parse_args()
    items = read_catalog(data_dir() / "products")
    if args.per_category:
        items = first_per_category(items, args.per_category)
    catalog, queries = split_items(items)
    labels = [it.category for it in catalog], [it.category for it in queries]
    tag = f"n{len(items)}"
    print(f"{len(catalog)} catalog / {len(queries)} query photos, {len(set(labels[0]))} categories")
    print(f"{'config':34s} {'flip':4s} {'C':>5s} {'ms/img':>7s} {'top1':>6s} {'P10all':>6s} {'P10cat':>6s} "
          f"{'mAP30all':>8s} {'mAP30cat':>8s}")
    for config in args.configs:
        plain, mirrored, seconds = features(config, [it.path for it in catalog + queries], tag)
        for flip in (False, True):
            vectors = plain + mirrored if flip else plain
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            for c in args.c:
                row = scores(vectors[: len(catalog)], labels[0], vectors[len(catalog) :], labels[1], c)
                ms = 1000 * seconds * (1 + flip)
                print(f"{config:34s} {flip!s:4s} {c:5g} {ms:7.1f} {row['top1']:6.3f} {row['p10_all']:6.3f} "
                      f"{row['p10_category']:6.3f} {row['map30_all']:8.3f} {row['map30_category']:8.3f}",
                      flush=True)


if __name__ == "__main__":
    main()
