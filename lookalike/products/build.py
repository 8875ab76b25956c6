"""Build a product index from a catalog: embed, train the category head, write, swap in atomically.

The new index is written to a temporary sibling folder, `manifest.json` last, and only then renamed
into place; the previous index is parked beside it until the new one is in, then deleted. A build
that dies at any point leaves the previous index loadable and unchanged (`product_index.locate`
also finds the parked one should the process die between the two renames). A store outside the
folder (a Milvus server or file) gets a new collection per build, dropped if the build fails, and
the replaced index's collection is dropped once the new index is in.

`update=True` keeps the previous index's vectors for the photos whose file is unchanged (same path
and content), embeds only new or changed photos, leaves out deleted ones, and refits the head.

The category head also reads each photo's vector from a second backbone (`DEFAULT_HEAD_MODEL`, recorded as
the manifest's `head.view`; `heads.head_input`); those vectors come from the embedding cache when they can,
and only the head keeps them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lookalike.images.cache import Entry
from lookalike.images.thumbnails import write_thumbnails
from lookalike.products import index as product_index
from lookalike.products import printed_words
from lookalike.products.catalog import read_catalog
from lookalike.products.embedding import EmbeddedCatalog, Engine, Progress, embed_again, embed_catalog, local_engine
from lookalike.products.heads import DEFAULT_C, CategoryHead, NeighbourVote, head_input, held_out_accuracy, preload
from lookalike.products.index import THUMBNAILS, index_exists
from lookalike.products.local_features import reusable, write_local_features
from lookalike.vectors.stores import DEFAULT_STORE, StoreError, VectorStore, create_store, open_store, parse_store
from model_zoo.registry import DEFAULT_PRODUCT_MODEL

if TYPE_CHECKING:  # the model zoo (and torch) load when an embedder is first needed
    from model_zoo.product_embedders import ProductEmbedder

__all__ = ["build_index", "index_exists"]  # index_exists: callers check before building
log = logging.getLogger(__name__)
ENGINES = ("local", "ray")

#: Annoy trees per index; with the searcher's over-fetch, recall@30 measured by `eval-products`.
DEFAULT_TREES = 32
#: The second backbone the category head reads beside the index's own (chosen on the category checks of the
#: README's Experiments: 3,760 right against 3,737 with Lite1 alone; Lite0 3,749, both 3,757). "none": no view.
DEFAULT_HEAD_MODEL = "efficientnet_lite2"
VERSIONED = ("torch", "timm", "annoy", "pymilvus", "ray", "scikit-learn", "numpy", "lookalike")


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


@dataclass
class Previous:
    """The index an update starts from: its rows by content, and its store to read vectors from."""

    folder: Path
    manifest: dict
    rows: dict[str, dict]  # sha256 -> row (the first row of that content)
    ids: dict[tuple[str, str], int]  # (path, sha256) -> item id
    next_id: int

    @classmethod
    def read(cls, out: Path) -> Previous:
        loaded = product_index.load_index(out)
        try:
            rows = list(loaded.rows)
        finally:
            loaded.close()
        by_content: dict[str, dict] = {}
        for row in rows:
            by_content.setdefault(row["sha256"], row)
        ids = {(row["path"], row["sha256"]): row["id"] for row in rows}
        return cls(loaded.folder, loaded.manifest, by_content, ids, max(ids.values(), default=-1) + 1)

    def known(self, wanted: Iterable[str]) -> dict[str, Entry]:
        """The previous vectors of the `wanted` contents: what an update need not embed again."""
        rows = [self.rows[digest] for digest in set(wanted) if digest in self.rows]
        store = open_store(self.folder, self.manifest["store"])
        try:
            _, vectors = store.vectors([row["id"] for row in rows])
        finally:
            store.close()
        return self._entries(rows, vectors)

    def known_views(self, wanted: Iterable[str]) -> dict[str, Entry]:
        """The previous second-backbone vectors of the `wanted` contents (`HEAD_VIEWS`); none when that file
        is missing or unreadable, and the update embeds them again."""
        try:
            by_id = product_index.read_head_views(self.folder)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("the index's head views cannot be read (%s): embedding them again", exc)
            return {}
        rows = [self.rows[digest] for digest in set(wanted) if self.rows.get(digest, {}).get("id") in by_id]
        return self._entries(rows, [by_id[row["id"]] for row in rows])

    @staticmethod
    def _entries(rows: list[dict], vectors: Iterable[np.ndarray]) -> dict[str, Entry]:
        return {row["sha256"]: (vector, {"width": row["width"], "height": row["height"]})
                for row, vector in zip(rows, vectors, strict=True)}

    def item_ids(self, embedded: EmbeddedCatalog) -> list[int]:
        """Unchanged photos keep their ids (and thumbnails); new or changed ones get new ids."""
        next_id, ids = self.next_id, []
        for item, digest in zip(embedded.items, embedded.digests, strict=True):
            if (str(item.path), digest) in self.ids:
                ids.append(self.ids[(str(item.path), digest)])
            else:
                ids.append(next_id)
                next_id += 1
        return ids


def _write(folder: Path, embedded: EmbeddedCatalog, ids: list[int], head: CategoryHead, manifest: dict,
           store: VectorStore, previous: Previous | None) -> dict:
    """Every part of the index but its manifest (written last: a folder without one is never a finished
    index); returns the store's manifest entry."""
    rows = [
        {
            "id": item_id,
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
        for item_id, item, digest, (width, height) in zip(
            ids, embedded.items, embedded.digests, embedded.sizes, strict=True
        )
    ]
    product_index.write_rows(folder / "catalog.sqlite", rows)
    sources = [item.path for item in embedded.items]
    earlier = previous.folder / THUMBNAILS if previous else None
    manifest["thumbnails"] = write_thumbnails(sources, embedded.digests, folder / THUMBNAILS, ids, earlier)
    head.save(folder / "head.npz")
    store.add(ids, embedded.vectors, [item.category for item in embedded.items])
    return store.persist()


def _discard_store(folder: Path, entry: dict | None) -> None:
    """Drop a replaced index's vectors where they live outside its folder (a Milvus collection)."""
    if not entry or not entry.get("uri"):
        return  # in the folder: deleted with it
    try:
        store = open_store(folder, entry)
        store.discard()
        store.close()
    except (StoreError, OSError) as exc:
        log.warning("could not drop the replaced index's %s vectors (%s); drop them by hand", entry["kind"], exc)


def _swap_in(building: Path, out: Path) -> None:
    previous = product_index.backup_dir(out)
    shutil.rmtree(previous, ignore_errors=True)
    if out.exists():
        out.rename(previous)
    building.rename(out)
    shutil.rmtree(previous, ignore_errors=True)


def _view_embedder(
    embedder: ProductEmbedder, head_model: str | None, previous: Previous | None, device: str | None
) -> ProductEmbedder | None:
    """The head's second backbone, made before any photo is embedded so a wrong name fails at once; None
    without one (no `head_model`, or the index's own model). An update keeps the previous index's choice."""
    from model_zoo.product_embedders import create_embedder

    if previous is not None:
        config = previous.manifest["head"].get("view")
        return create_embedder(**config, device=device) if config else None
    wanted = head_model not in (None, "none") and head_model != embedder.name
    return create_embedder(head_model, device=device) if wanted else None


def _engine(engine: str, ray_address: str | None) -> Engine:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "local":
        return local_engine
    try:
        from lookalike.products.ray_engine import ray_engine
    except ImportError as exc:
        raise ValueError(f"--engine ray needs Ray Data ({exc}): pip install 'lookalike[scale]'") from None
    return ray_engine(ray_address)


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
    store: str | None = None,
    update: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
    local_features: bool | None = None,
    read_text: bool | None = None,
    head_model: str | None = DEFAULT_HEAD_MODEL,
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
            An update always uses the previous index's embedder.
        manifest: a CSV giving titles, prices, urls and product ids of the catalog folder's photos.
        trees: Annoy trees per forest (the search effort is measured at build time).
        batch_size: photos per network call (default: the embedder's, chosen by measurement).
        store: where the vectors go (`lookalike.vectors.stores`): "annoy" (default), "annoy?dtype=float16",
            "milvus" (Milvus Lite in the index folder), "milvus:///path/file.db", "milvus://host:19530".
            An update keeps the previous index's store unless one is given.
        update: start from the index at `out`: unchanged photos keep their vectors, new ones are
            embedded, removed ones dropped, the category head refitted.
        engine: "local" (threads in this process) or "ray" (a Ray Data actor pool; `ray_address`
            joins a cluster, None starts Ray on this machine).
        local_features: also store every photo's SIFT keypoints (44 KB and ~19 ms a photo on the shared
            catalog, 2 cores), so search can verify its first hits (`lookalike.products.spatial`). An update
            keeps the previous index's choice unless one is given, and copies the unchanged photos' keypoints
            (extracted with today's settings) instead of extracting them again.
        read_text: also read the words printed on every photo (OCR, ~0.25 s a photo on 2 cores), so a
            query's words vote for its category (`lookalike.products.printed_words`): for catalogs of printed
            packs. An update keeps the previous index's choice unless one is given, and reads new photos only.
        head_model: a second product model (`model_zoo.create_embedder` name) whose vector of each photo the
            category head reads beside the index's own (`heads.head_input`); search then runs it on each
            query too (~27 ms for Lite2 on 2 cores). None or "none": the head reads the index's vectors
            alone. An update keeps the previous index's choice.
        vote: the nearest-photo vote blended into the category ranking.
        progress: called with (photos done, photos in all); `show_bar` shows a tqdm bar.

    Returns:
        The manifest written (`manifest.json`): counts per category, the embedder's config, the
        store, the category head's held-out accuracy, build time and throughput, the unreadable files
        skipped and, for an update, how many photos were kept, added and removed.

    Raises:
        FileNotFoundError: `catalog` or `manifest` does not exist; `update` without an index at `out`.
        ValueError: no readable photo in the catalog, a malformed manifest, an unknown store or engine.
        UnknownModelError, WeightsUnavailableError: the model is unknown or its weights are not here.

    Example:
        >>> import lookalike
        >>> report = lookalike.build_index("shop_photos/", "index")
        >>> report["items"], report["head"]["held_out_accuracy"]
        (3524, 0.946)
        >>> lookalike.build_index("shop_photos/", "index", update=True)["update"]
        {'kept': 3524, 'added': 12, 'removed': 3}
    """
    catalog, out = Path(catalog), Path(out)
    started = time.perf_counter()
    items = read_catalog(catalog, Path(manifest) if manifest else None)
    previous = Previous.read(out) if update else None
    address = store or (previous.manifest["store"]["address"] if previous else DEFAULT_STORE)
    spec = parse_store(address)
    if embedder is None:
        from model_zoo.product_embedders import create_embedder

        embedder = (create_embedder(**previous.manifest["embedder"], device=device) if previous
                    else create_embedder(model, weights, size=size, flip=flip, device=device))
    view_embedder = _view_embedder(embedder, head_model, previous, device)
    known = previous.known if previous else None
    preload()
    runner = _engine(engine, ray_address)
    embedded = embed_catalog(items, embedder, batch_size, progress, show_bar, known, runner)
    if not embedded.items:
        raise ValueError(f"no readable image in {catalog}: {len(embedded.skipped)} files skipped")
    ids = previous.item_ids(embedded) if previous else list(range(len(embedded.items)))
    labels = [item.category for item in embedded.items]
    vote = vote or NeighbourVote()
    views = None
    if view_embedder is not None:
        known_views = previous.known_views if previous else None
        views = embed_again(embedded, view_embedder, show_bar, known_views, runner)
    accuracy, start = held_out_accuracy(embedded.vectors, labels, vote=vote, views=views)
    head = CategoryHead.fit(head_input(embedded.vectors, views), labels, start=start)
    report = {
        "format": product_index.FORMAT,
        "model": embedder.name,
        "embedder": embedder.config,
        "dim": embedder.dim,
        "metric": "cosine",
        "items": len(embedded.items),
        "counts": dict(sorted(Counter(labels).items())),
        "category_order": head.classes,
        "head": {"kind": "logistic_regression", "C": DEFAULT_C, "held_out_accuracy": accuracy["accuracy"],
                 "held_out_head_only_accuracy": accuracy["head_only_accuracy"],
                 "held_out": accuracy["held_out"], "refit_on": len(labels),
                 **({"view": view_embedder.config} if view_embedder else {})},
        "neighbour_vote": asdict(vote),
        "catalog": str(manifest or catalog),
        "engine": engine,
        "cache_hits": embedded.cache_hits,
        "skipped_count": len(embedded.skipped),
        "skipped": embedded.skipped,
        "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if previous:
        kept = sum(1 for item_id in ids if item_id < previous.next_id)
        report["update"] = {"kept": kept, "added": len(ids) - kept, "removed": len(previous.ids) - kept}
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(out)
    building = _building_dir(out)
    building.mkdir(parents=True)
    new_store = create_store(spec, building, embedder.dim, trees, out.name)
    replaced = previous.manifest if previous else _current_manifest(out)
    try:
        report["store"] = {**_write(building, embedded, ids, head, report, new_store, previous), "address": address}
        if views is not None:
            product_index.write_head_views(building, ids, views)
        paths = [it.path for it in embedded.items]
        if local_features is None:
            local_features = bool(previous and previous.manifest.get("local_features"))
        if local_features:
            stored = reusable(previous.folder, previous.manifest.get("local_features")) if previous else None
            report["local_features"] = write_local_features(building, ids, paths, stored)
            del stored  # its memory maps, before the previous folder is deleted
        if read_text is None:
            read_text = bool(previous and previous.manifest.get("words"))
        if read_text:
            read_before = printed_words.reusable(previous.folder, previous.manifest.get("words")) if previous else None
            report["words"] = printed_words.write_words(building, ids, paths, embedded.digests, read_before, show_bar)
        new_store.close()  # before the folder is renamed under an embedded Milvus Lite file
        seconds = time.perf_counter() - started
        report.update(build_seconds=round(seconds, 2), images_per_second=round(len(items) / seconds, 2))
        (building / "manifest.json").write_text(json.dumps(report, indent=2))  # last: the index is complete
        _swap_in(building, out)
    except BaseException:
        new_store.close()
        new_store.discard()  # a collection outside the folder (the folder itself goes below)
        raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    if replaced:
        _discard_store(out, replaced.get("store"))
    return report


def _current_manifest(out: Path) -> dict | None:
    """The manifest of the index a build will replace, if there is a readable one."""
    try:
        return product_index.read_manifest(product_index.locate(out))
    except (FileNotFoundError, ValueError):
        return None
