"""Build a product index from a catalog: embed, train the category head, write, swap in atomically.

The new index is written to a temporary sibling folder, `manifest.json` last, and only then renamed
into place; the previous index is parked beside it until the new one is in, then deleted. A build
that dies at any point leaves the previous index loadable and unchanged (`product_index.locate`
also finds the parked one should the process die between the two renames).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lookalike.images.thumbnails import write_thumbnails
from lookalike.products import index as product_index
from lookalike.products import neighbours
from lookalike.products.ann_tuning import RECALL_K, tune_search_k
from lookalike.products.catalog import read_catalog
from lookalike.products.embedding import EmbeddedCatalog, Progress, embed_catalog
from lookalike.products.heads import DEFAULT_C, CategoryHead, NeighbourVote, held_out_accuracy
from lookalike.products.index import THUMBNAILS, index_exists
from lookalike.products.search import candidate_count
from model_zoo.registry import DEFAULT_PRODUCT_MODEL

if TYPE_CHECKING:  # the model zoo (and torch) load when an embedder is first needed
    from model_zoo.product_embedders import ProductEmbedder

__all__ = ["build_index", "index_exists"]  # index_exists: callers check before building

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
    sources = [item.path for item in embedded.items]
    manifest["thumbnails"] = write_thumbnails(sources, embedded.digests, folder / THUMBNAILS)
    head.save(folder / "head.npz")
    ids = np.arange(len(rows))
    labels = np.asarray([row["category"] for row in rows])
    neighbours.build_annoy(embedded.vectors, ids, trees, product_index.annoy_file(folder, None))
    manifest.update(tune_search_k(embedded.vectors, trees, candidate_count(RECALL_K)))
    for number, category in enumerate(manifest["category_order"]):
        path = product_index.annoy_file(folder, number)
        neighbours.build_annoy(embedded.vectors, ids[labels == category], trees, path)
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
    batch_size: int | None = None,
    weights: str | None = None,
    size: int | None = None,
    flip: bool | None = None,
    device: str | None = None,
    embedder: ProductEmbedder | None = None,
    vote: NeighbourVote | None = None,
    progress: Progress | None = None,
    show_bar: bool = True,
) -> dict:
    """Build the product-search index of a catalog into `out`, replacing any index there atomically.

    Args:
        catalog: a folder of `<category>/<photo>` files, or a manifest CSV
            (path,category[,title,price,url,product_id]).
        out: the index folder. A build that fails or is interrupted leaves the index there unchanged.
        model, weights, size, flip, device: the product embedder (`model_zoo.create_embedder`; device
            "cuda" runs it on a GPU, the default when one is visible), unless `embedder` is given ready-made.
        manifest: a CSV giving titles, prices, urls and product ids of the catalog folder's photos.
        trees: Annoy trees per index (the search effort is measured at build time).
        batch_size: photos per network call (default: the embedder's, chosen by measurement).
        vote: the nearest-photo vote blended into the category ranking.
        progress: called with (photos done, photos in all); `show_bar` shows a tqdm bar.

    Returns:
        The manifest written (`manifest.json`): counts per category, the embedder's config, the
        category head's held-out accuracy, build time and throughput, and the unreadable files skipped.

    Raises:
        FileNotFoundError: `catalog` or `manifest` does not exist.
        ValueError: no readable photo in the catalog, or a malformed manifest.
        UnknownModelError, WeightsUnavailableError: the model is unknown or its weights are not here.

    Example:
        >>> import lookalike
        >>> report = lookalike.build_index("shop_photos/", "index")
        >>> report["items"], report["head"]["held_out_accuracy"]
        (3524, 0.946)
    """
    catalog, out = Path(catalog), Path(out)
    started = time.perf_counter()
    items = read_catalog(catalog, Path(manifest) if manifest else None)
    if embedder is None:
        from model_zoo.product_embedders import create_embedder

        embedder = create_embedder(model, weights, size=size, flip=flip, device=device)
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
