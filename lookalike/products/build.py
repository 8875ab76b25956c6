"""Build a product index from a catalog: plan, embed, fit the category head, write the core and every chosen
part, swap in.

The folder is written by the one index writer (`lookalike.vectors.index_writer`): its lock is held from reading
the index an update replaces to the swap, the new index is written beside it, its manifest last, and swapped in;
a build that dies at any point leaves the previous index loadable and unchanged.

`update=True` keeps the previous index's vectors for the photos whose file is unchanged (same path and content),
embeds only new or changed photos, leaves out deleted ones, refits the head, and lets each part reuse what it
can (keypoints, words, view vectors, thumbnails of kept items).

By default a build tunes the backbone's last stages on the catalog when it has enough labelled photos
(`lookalike.products.tuning`), embeds the catalog with the tuned backbone and stores it in the index; the parts
it writes are the default preset's (`parts.PRESETS`: keypoints to verify hits, and no head view for a tuned
backbone). `fast=True` is the frozen build: ImageNet backbone and the fast preset (docs/product-search.md).
An update reuses its index's tuned backbone, and tunes again only when asked or when the catalog has outgrown
the tuning (`tuning.retune_reason`).
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from lookalike.products.embedding import EmbeddedCatalog, Progress, embed_catalog
from lookalike.products.heads import DEFAULT_C, CategoryHead, head_input, held_out_accuracy, preload, preloaded
from lookalike.products.index import MANIFEST, TUNED_BACKBONE, index_exists, write_head, write_rows
from lookalike.products.manifest import IndexManifest
from lookalike.products.options import BuildOptions
from lookalike.products.parts import BuildContext
from lookalike.products.plan import Plan, resolve
from lookalike.products.tuning import TunedCatalog, tune_catalog
from lookalike.vectors.index_writer import IndexWriter
from lookalike.vectors.stores import VectorStore

if TYPE_CHECKING:
    from model_zoo.product_embedders import ProductEmbedder

__all__ = ["BuildOptions", "build_index", "index_exists"]  # index_exists: callers check before building
VERSIONED = ("torch", "timm", "annoy", "pymilvus", "ray", "scikit-learn", "numpy", "lookalike")


def _versions() -> dict[str, str]:
    found = {}
    for package in VERSIONED:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found


def _embed(plan: Plan, progress: Progress | None, show_bar: bool) -> tuple[EmbeddedCatalog, TunedCatalog | None]:
    """The catalog's vectors (an update's unchanged photos keep theirs, unless it tunes again), and the tuning
    when this build tunes."""
    if plan.tuning.tune:
        if show_bar:
            print(f"backbone: {plan.tuning.reason}", flush=True)
        tuned = tune_catalog(plan.items, plan.embedder, plan.tuning.reason, device=plan.options.device,
                             progress=progress)
        embedded = tuned.embedded
    else:
        tuned, known = None, plan.previous.known if plan.previous else None
        embedded = embed_catalog(plan.items, plan.embedder, plan.options.batch_size, progress, show_bar, known,
                                 plan.engine)
    if not embedded.items:
        raise ValueError(f"no readable image in {plan.catalog}: {len(embedded.skipped)} files skipped")
    return embedded, tuned


def _fit_head(build: BuildContext) -> tuple[CategoryHead, dict]:
    """The category head's held-out accuracy (blended with the neighbour vote as search uses it), then the
    head refitted on every photo, starting from the held-out run's."""
    preloaded()
    vectors, labels = build.embedded.vectors, build.labels
    accuracy, start = held_out_accuracy(vectors, labels, vote=build.vote, views=build.head_views)
    head = CategoryHead.fit(head_input(vectors, build.head_views), labels, start=start)
    entry = {"kind": "logistic_regression", "C": DEFAULT_C, "held_out_accuracy": accuracy["accuracy"],
             "held_out_head_only_accuracy": accuracy["head_only_accuracy"], "held_out": accuracy["held_out"],
             "refit_on": len(labels)}
    return head, entry


def _rows(build: BuildContext) -> list[dict]:
    """The catalog's rows (`rows.ROW_FIELDS`)."""
    embedded = build.embedded
    return [
        {"id": item_id, "path": str(item.path), "category": item.category, "title": item.title, "price": item.price,
         "url": item.url, "product_id": item.product_id, "width": width, "height": height, "sha256": digest}
        for item_id, item, digest, (width, height) in zip(
            build.ids, embedded.items, embedded.digests, embedded.sizes, strict=True
        )
    ]


def _write_backbone(folder: Path, plan: Plan, tuned: TunedCatalog | None) -> dict | None:
    """The tuned backbone into the index: this build's, or the one an update keeps (linked, or copied with its
    time stamp, so the embedder's caches keyed on it stay valid); returns the manifest's `tuning` entry."""
    target = folder / TUNED_BACKBONE
    if tuned is not None:
        tuned.save(plan.embedder.name, target)
        return {**tuned.entry, "weights": TUNED_BACKBONE}
    if not plan.reuses_tuning:
        return None
    source = plan.previous.folder / TUNED_BACKBONE
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return plan.previous.manifest.tuning


def _filler(plan: Plan, build: BuildContext, tuned: TunedCatalog | None, head: CategoryHead, head_entry: dict,
            started: float):
    """`IndexWriter.write`'s fill: the core's files, each part's, the vectors; returns the manifest."""

    def fill(folder: Path, store: VectorStore) -> IndexManifest:
        write_rows(folder, _rows(build))
        write_head(folder, head)
        tuning = _write_backbone(folder, plan, tuned)
        store.add(build.ids, build.embedded.vectors, build.labels)
        store_entry = {**store.persist(), "address": plan.options.store}
        parts = {kind.name: kind.write(build, folder) for kind in plan.parts}
        seconds = time.perf_counter() - started
        embedded = build.embedded
        return IndexManifest(
            model=plan.embedder.name,
            # a tuned index records its base model's config: its weights are its own TUNED_BACKBONE
            embedder=plan.previous.manifest.embedder if plan.reuses_tuning else plan.embedder.config,
            dim=plan.embedder.dim, items=len(embedded.items), counts=dict(sorted(Counter(build.labels).items())),
            category_order=head.classes, head=head_entry, catalog=str(plan.options.manifest or plan.catalog),
            engine=plan.options.engine, cache_hits=embedded.cache_hits, skipped_count=len(embedded.skipped),
            skipped=embedded.skipped, versions=_versions(),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            update=plan.previous.counts(build.ids) if plan.previous else None, store=store_entry, tuning=tuning,
            build_seconds=round(seconds, 2), images_per_second=round(len(plan.items) / seconds, 2),
            extra={name: entry for name, entry in parts.items() if entry is not None},
        )

    return fill


def build_index(
    catalog: Path,
    out: Path,
    options: BuildOptions | None = None,
    *,
    embedder: ProductEmbedder | None = None,
    progress: Progress | None = None,
    show_bar: bool = True,
    **overrides,
) -> dict:
    """Build the product-search index of a catalog into `out`, replacing any index there atomically.

    Args:
        catalog: a folder of `<category>/<photo>` files, or a manifest CSV
            (path,category[,title,price,url,product_id]).
        out: the index folder. A build that fails or is interrupted leaves the index there unchanged.
        options: a `BuildOptions`; each of its fields may also be given as a keyword (below), which
            overrides it.
        model, weights, size, flip, device: the product embedder (`model_zoo.create_embedder`; device
            "cuda" runs it on a GPU, the default when one is visible), unless `embedder` is given ready-made.
            An update always uses the previous index's embedder (its tuned backbone, if it has one).
        fast: the frozen build (no tuning, the fast preset of parts: no keypoints, the head's second view):
            minutes faster, finds a product like the query's rather than the query's own (docs/product-search.md).
        tune: "auto" (the default unless `fast`: tune the backbone's last stages on the catalog when it has
            `tuning.MIN_PHOTOS_PER_CATEGORY` photos a category on average, and store it in the index),
            "always" or "never". An update keeps its index's tuned backbone and tunes again only when told
            "always", or when the catalog has outgrown the tuning (`tuning.retune_reason`).
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
        local_features: the keypoints part (`parts.keypoints`): store every photo's SIFT keypoints, so search
            can verify its first hits; None: yes unless `fast`.
        read_text: the printed-words part (`parts.printed_words`): read the words printed on every photo (OCR,
            slow), so a query's words vote for its category: for catalogs of printed packs. None: no.
        head_model: the head-view part (`parts.head_view`): a second product model whose vector of each photo
            the category head reads beside the index's own. "none": no view; None: DEFAULT_HEAD_MODEL for a
            frozen backbone, none for a tuned one.
        vote: the neighbour-vote part's settings (None: `NeighbourVote()`).
            An update keeps the previous index's parts unless an option says otherwise, and each part reuses
            what it stored of the unchanged photos.
        embedder: a ready-made product embedder, instead of `model` and its settings.
        progress: called with (photos done, photos in all); `show_bar` shows a tqdm bar.

    Returns:
        The manifest written (`IndexManifest.to_dict()`, as manifest.json holds it): counts per category,
        the embedder's config, the store, the category head's held-out accuracy, build time and throughput,
        the unreadable files skipped, each part's entry and, for an update, how many photos were kept, added
        and removed.

    Raises:
        IndexLockedError: another build or update of `out` is running (the message names its pid).
        IndexWriteError: the disk refused the new index (full, read-only); the index at `out` is unchanged.
        FileNotFoundError: `catalog` or `manifest` does not exist; `update` without an index at `out`.
        ValueError: no readable photo in the catalog, a malformed manifest, an unknown store, engine or tune
            mode; `tune="always"` for a model tuning cannot split or a catalog of one category.
        TypeError: a keyword that is not a `BuildOptions` field.
        UnknownModelError, WeightsUnavailableError: the model is unknown or its weights are not here.

    Example:
        >>> import lookalike
        >>> report = lookalike.build_index("shop_photos/", "index")
        >>> report["items"], report["tuning"]["reason"]
        (3524, 'tuned on the catalog (122 photos a category on average)')
        >>> lookalike.build_index("shop_photos/", "index", update=True)["update"]
        {'kept': 3524, 'added': 12, 'removed': 3}
    """
    started = time.perf_counter()
    options = replace(options or BuildOptions(), **overrides)
    with IndexWriter(Path(out), marker=MANIFEST, what="index") as writer:  # one writer, to the swap
        plan = resolve(Path(catalog), Path(out), options, embedder)
        preload()  # the head's solver imports while the catalog is embedded
        embedded, tuned = _embed(plan, progress, show_bar)
        ids = plan.previous.item_ids(embedded) if plan.previous else list(range(len(embedded.items)))
        build = BuildContext(plan.options, embedded, ids, plan.previous, plan.embedder, plan.engine, show_bar,
                             state=plan.state)
        for kind in plan.parts:
            kind.fit(build)
        head, head_entry = _fit_head(build)
        manifest = writer.write(plan.spec, plan.embedder.dim, plan.options.trees,
                                _filler(plan, build, tuned, head, head_entry, started))
    return manifest.to_dict()
