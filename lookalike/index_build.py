"""Build a product index from a catalog: embed, train the category head, write, swap in atomically.

The new index is written to a temporary sibling folder, `manifest.json` last, and only then renamed
into place; the previous index is parked beside it until the new one is in, then deleted. A build
that dies at any point leaves the previous index loadable and unchanged (`product_index.locate`
also finds the parked one should the process die between the two renames).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from lookalike import product_index
from lookalike.ann_tuning import RECALL_K, tune_search_k
from lookalike.catalog_embedding import EmbeddedCatalog, Progress, embed_catalog
from lookalike.catalog_source import read_catalog
from lookalike.category_head import DEFAULT_C, CategoryHead, NeighbourVote, held_out_accuracy
from lookalike.product_index import index_exists
from lookalike.search import candidate_count
from model_zoo.product_embedders import DEFAULT_PRODUCT_MODEL, ProductEmbedder, create_embedder

__all__ = ["build_index", "index_exists", "main"]  # index_exists: callers check before building

#: Annoy trees per index; with the searcher's over-fetch, recall@30 measured by `eval-products`.
DEFAULT_TREES = 32
VERSIONED = ("torch", "timm", "annoy", "scikit-learn", "numpy", "lookalike")


def _versions() -> dict[str, str]:
    found = {}
    for package in VERSIONED:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found


def _building_dir(out: Path) -> Path:
    return out.with_name(f".{out.name}.building-{os.getpid()}")


def _remove_stale_builds(out: Path) -> None:
    """Temporary folders left by builds that were killed (their process is gone)."""
    for folder in out.parent.glob(f".{out.name}.building-*"):
        pid = int(folder.name.rsplit("-", 1)[1]) if folder.name.rsplit("-", 1)[1].isdigit() else 0
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, ValueError, OverflowError):
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            continue


def _write(folder: Path, embedded: EmbeddedCatalog, head: CategoryHead, manifest: dict, trees: int) -> None:
    """Every part of the index, manifest.json last: a folder without it is never a finished index."""
    folder.mkdir(parents=True)
    np.save(folder / "vectors.npy", embedded.vectors)
    rows = [
        {
            "id": i,
            "path": str(item.path),
            "category": item.category,
            "title": item.title,
            "price": item.price,
            "url": item.url,
            "product_id": item.product_id,
            "width": width,
            "height": height,
            "sha256": digest,
        }
        for i, (item, digest, (width, height)) in enumerate(
            zip(embedded.items, embedded.digests, embedded.sizes, strict=True)
        )
    ]
    product_index.write_rows(folder / "catalog.sqlite", rows)
    head.save(folder / "head.npz")
    ids = np.arange(len(rows))
    labels = np.asarray([row["category"] for row in rows])
    product_index.build_annoy(embedded.vectors, ids, trees, product_index.annoy_file(folder, None))
    manifest.update(tune_search_k(embedded.vectors, trees, candidate_count(RECALL_K)))
    for number, category in enumerate(manifest["category_order"]):
        path = product_index.annoy_file(folder, number)
        product_index.build_annoy(embedded.vectors, ids[labels == category], trees, path)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _swap_in(building: Path, out: Path) -> None:
    previous = product_index.backup_dir(out)
    shutil.rmtree(previous, ignore_errors=True)
    if out.exists():
        out.rename(previous)
    building.rename(out)
    shutil.rmtree(previous, ignore_errors=True)


def build_index(
    catalog: Path,
    out: Path,
    *,
    model: str = DEFAULT_PRODUCT_MODEL,
    manifest: Path | None = None,
    trees: int = DEFAULT_TREES,
    batch_size: int = 32,
    weights: str | None = None,
    size: int | None = None,
    flip: bool | None = None,
    embedder: ProductEmbedder | None = None,
    vote: NeighbourVote | None = None,
    progress: Progress | None = None,
    show_bar: bool = True,
) -> dict:
    """Index `catalog` (folder or CSV, or folder + `manifest`) into `out`; returns the manifest written."""
    catalog, out = Path(catalog), Path(out)
    started = time.perf_counter()
    items = read_catalog(catalog, Path(manifest) if manifest else None)
    embedder = embedder or create_embedder(model, weights, size=size, flip=flip)
    embedded = embed_catalog(items, embedder, batch_size, progress, show_bar)
    if not embedded.items:
        raise ValueError(f"no readable image in {catalog}: {len(embedded.skipped)} files skipped")
    labels = [item.category for item in embedded.items]
    vote = vote or NeighbourVote()
    accuracy = held_out_accuracy(embedded.vectors, labels, vote=vote)
    head = CategoryHead.fit(embedded.vectors, labels)
    seconds = time.perf_counter() - started
    report = {
        "format": product_index.FORMAT,
        "model": embedder.name,
        "embedder": embedder.config,
        "dim": embedder.dim,
        "metric": product_index.METRIC,
        "trees": trees,
        "items": len(embedded.items),
        "counts": dict(sorted(Counter(labels).items())),
        "category_order": head.classes,
        "head": {"kind": "logistic_regression", "C": DEFAULT_C, "held_out_accuracy": accuracy["accuracy"],
                 "held_out_head_only_accuracy": accuracy["head_only_accuracy"],
                 "held_out": accuracy["held_out"], "refit_on": len(labels)},
        "neighbour_vote": asdict(vote),
        "catalog": str(manifest or catalog),
        "build_seconds": round(seconds, 2),
        "images_per_second": round(len(items) / seconds, 2),
        "cache_hits": embedded.cache_hits,
        "skipped_count": len(embedded.skipped),
        "skipped": embedded.skipped,
        "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(out)
    building = _building_dir(out)
    try:
        _write(building, embedded, head, report, trees)
        _swap_in(building, out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="index_builder.py", description="Build the product-search index of a catalog."
    )
    parser.add_argument("catalog", type=Path, help="folder of category sub-folders, or a manifest CSV")
    parser.add_argument("--out", type=Path, required=True, help="index folder (replaced atomically)")
    parser.add_argument("--model", default=DEFAULT_PRODUCT_MODEL, help="product model name, or a timm name")
    parser.add_argument("--weights", help="weights file for --model (default: its packaged/pretrained ones)")
    parser.add_argument("--manifest", type=Path, help="CSV path,category[,title,price,url,product_id]")
    parser.add_argument("--trees", type=int, default=DEFAULT_TREES)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, help="input resolution (default: the model's)")
    parser.add_argument("--no-flip", dest="flip", action="store_false", default=None,
                        help="embed without the mirror-image test-time augmentation")
    parser.add_argument("--vote-weight", type=float, default=NeighbourVote.weight,
                        help="share of the nearest-photo vote in the category ranking (0: head alone)")
    parser.add_argument("--json", action="store_true", help="print the build report as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = build_index(
        args.catalog, args.out, model=args.model, manifest=args.manifest, trees=args.trees,
        batch_size=args.batch_size, weights=args.weights, size=args.size, flip=args.flip,
        vote=NeighbourVote(weight=args.vote_weight),
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    accuracy = report["head"]["held_out_accuracy"]
    print(f"indexed {report['items']} photos in {len(report['counts'])} categories into {args.out} "
          f"({report['build_seconds']} s, {report['images_per_second']} img/s, "
          f"{report['cache_hits']} cached)")
    print(f"category head held-out accuracy: {'n/a' if accuracy is None else f'{accuracy:.3f}'}")
    print(f"skipped {report['skipped_count']} unreadable files")
    for skipped in report["skipped"]:
        print(f"  {skipped['path']}: {skipped['reason']}")
    return 0
