"""Build a product index from a catalog, in four steps: embed, fit the category head, write, swap in.

The new index is written to a temporary sibling folder, its manifest (`index.MANIFEST`) last, and only then
renamed into place; the previous index is parked beside it until the new one is in, then deleted
(`lookalike.vectors.index_folder`). A build that dies at any point leaves the previous index loadable and
unchanged (`index_folder.locate` also finds the parked one should the process die between the two renames).
One build of a folder at a time: a build holds `index_folder.write_lock(out)` from reading the index it
replaces to its swap, and a second build of the same folder is refused at once (`IndexLockedError`).
A store outside the folder (a Milvus server or file) gets a new collection per build, dropped if the build
fails, and the replaced index's collection is dropped once the new index is in.

`update=True` keeps the previous index's vectors for the photos whose file is unchanged (same path
and content), embeds only new or changed photos, leaves out deleted ones, and refits the head.

By default a build tunes the backbone's last stages on the catalog when it has enough labelled photos
(`lookalike.products.tuning`), embeds the catalog with the tuned backbone, stores it in the index, and
stores every photo's keypoints for re-ranking: the pipeline that finds the query's product, not just one like
it. `fast=True` is the frozen build: ImageNet backbone, no keypoints, and the category head reading a second
backbone's vectors too (`DEFAULT_HEAD_MODEL`, recorded as the manifest's `head.view`; `heads.head_input`),
which helps a frozen backbone's category ranking but not a tuned one's (what each costs and gives:
docs/product-search.md). An update reuses its index's tuned backbone, and tunes again only when asked or when
the catalog has outgrown the tuning (`tuning.retune_reason`).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lookalike.images.cache import Entry
from lookalike.images.thumbnails import write_thumbnails
from lookalike.products import index as product_index
from lookalike.products import printed_words
from lookalike.products.calibration import SimilarityCalibration
from lookalike.products.catalog import CatalogItem, read_catalog
from lookalike.products.embedding import EmbeddedCatalog, Engine, Progress, embed_again, embed_catalog, local_engine
from lookalike.products.heads import (
    DEFAULT_C,
    CategoryHead,
    NeighbourVote,
    head_input,
    held_out_accuracy,
    preload,
    preloaded,
)
from lookalike.products.index import IndexManifest, index_exists
from lookalike.products.local_features import reusable, write_local_features
from lookalike.products.tuning import (
    Decision,
    TunedCatalog,
    decide,
    retune_reason,
    tunable,
    tune_catalog,
)
from lookalike.vectors import index_folder
from lookalike.vectors.stores import (
    DEFAULT_STORE,
    StoreSpec,
    VectorStore,
    create_store,
    discard_replaced,
    open_store,
    parse_store,
)
from model_zoo.registry import DEFAULT_PRODUCT_MODEL

if TYPE_CHECKING:  # the model zoo (and torch) load when an embedder is first needed
    from model_zoo.product_embedders import ProductEmbedder

__all__ = ["BuildOptions", "build_index", "index_exists"]  # index_exists: callers check before building
log = logging.getLogger(__name__)
ENGINES = ("local", "ray")

#: Annoy trees per index; with the searcher's over-fetch, recall@30 measured by `eval-products`.
DEFAULT_TREES = 32
#: The second backbone the category head reads beside the index's own, chosen on the category checks
#: (docs/experiments/). "none": no view.
DEFAULT_HEAD_MODEL = "efficientnet_lite2"
VERSIONED = ("torch", "timm", "annoy", "pymilvus", "ray", "scikit-learn", "numpy", "lookalike")


@dataclass(kw_only=True)
class BuildOptions:
    """How to build an index: the keywords of `build_index` (documented there) in one typed object, so the
    CLI maps its arguments onto them once and a caller can keep a set of them. None: the default, or for an
    update the previous index's choice (`_resolve`)."""

    model: str = DEFAULT_PRODUCT_MODEL
    fast: bool = False
    tune: str | None = None
    weights: str | None = None
    size: int | None = None
    flip: bool | None = None
    device: str | None = None
    manifest: Path | None = None  # the catalog's metadata CSV, not the index's manifest
    trees: int = DEFAULT_TREES
    batch_size: int | None = None
    store: str | None = None
    update: bool = False
    engine: str = "local"
    ray_address: str | None = None
    local_features: bool | None = None
    read_text: bool | None = None
    head_model: str | None = None
    vote: NeighbourVote | None = None


def _versions() -> dict[str, str]:
    found = {}
    for package in VERSIONED:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found


@dataclass
class Previous:
    """The index an update starts from: its rows by content, and its store to read vectors from."""

    folder: Path
    manifest: IndexManifest
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
        store = open_store(self.folder, self.manifest.store)
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


def _view_embedder(
    embedder: ProductEmbedder, head_model: str | None, previous: Previous | None, device: str | None, tuned: bool
) -> ProductEmbedder | None:
    """The head's second backbone, made before any photo is embedded so a wrong name fails at once; None
    without one ("none", or the index's own model). None given: DEFAULT_HEAD_MODEL for a frozen backbone,
    none for a tuned one (it gains nothing there: docs/experiments/second-view.md). An update keeps the
    previous index's choice."""
    from model_zoo.product_embedders import create_embedder

    if previous is not None:
        config = previous.manifest.head_view
        return create_embedder(**config, device=device) if config else None
    if head_model is None:
        head_model = "none" if tuned else DEFAULT_HEAD_MODEL
    wanted = head_model != "none" and head_model != embedder.name
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


@dataclass
class _Plan:
    """What a build settles before it embeds a photo: the options resolved against the index it updates, the
    catalog's items, the store, the embedders and the engine (each made first, so a wrong name fails at once)."""

    catalog: Path
    out: Path
    options: BuildOptions
    items: list[CatalogItem]
    previous: Previous | None
    spec: StoreSpec
    embedder: ProductEmbedder
    view_embedder: ProductEmbedder | None
    engine: Engine
    tuning: Decision  # whether this build tunes the backbone (an update reusing its tuned one does not)

    @property
    def reuses_tuning(self) -> bool:
        """An update that keeps its index's tuned backbone."""
        return self.previous is not None and self.previous.manifest.tuning is not None and not self.tuning.tune


@dataclass
class _Fitted:
    """The embedded catalog, its item ids, its second-backbone vectors (if any) and the head fitted on them."""

    embedded: EmbeddedCatalog
    ids: list[int]
    views: np.ndarray | None
    tuned: TunedCatalog | None
    head: CategoryHead
    accuracy: dict
    calibration: SimilarityCalibration | None

    @property
    def labels(self) -> list[str]:
        return [item.category for item in self.embedded.items]


def _resolve(options: BuildOptions, previous: Previous | None) -> BuildOptions:
    """The options with every None settled: an update keeps the previous index's store, local features and
    words unless told otherwise; a fresh build stores keypoints unless `fast`."""
    before = previous.manifest if previous else None
    keypoints = bool(before.local_features) if before else not options.fast
    return replace(
        options,
        store=options.store or (before.store["address"] if before else DEFAULT_STORE),
        local_features=keypoints if options.local_features is None else options.local_features,
        read_text=bool(before and before.words) if options.read_text is None else options.read_text,
        vote=options.vote or NeighbourVote(),
    )


def _embedder(options: BuildOptions, previous: Previous | None, tuning: Decision) -> ProductEmbedder:
    """The product embedder: an update's previous one (its tuned backbone, unless it tunes again), else the
    options' model. One that will be tuned runs in torch (its frozen stages are exported on their own)."""
    from model_zoo.product_embedders import create_embedder

    backend = {"backend": "torch"} if tuning.tune else {}
    if previous is not None:
        manifest = previous.manifest
        config = manifest.embedder if tuning.tune else manifest.embedder_config(previous.folder)
        return create_embedder(**config, device=options.device, **backend)
    return create_embedder(options.model, options.weights, size=options.size, flip=options.flip,
                           device=options.device, **backend)


def _tuning(options: BuildOptions, items: list[CatalogItem], previous: Previous | None) -> Decision:
    """Whether this build tunes: `tune` (None: "never" when `fast`, else "auto"); an update keeps its index's
    tuned backbone unless told "always" or the catalog has outgrown it (`tuning.retune_reason`), and keeps a
    frozen index frozen unless told "always"."""
    mode = options.tune or ("never" if options.fast else "auto")
    if previous is None or mode == "always":
        return decide(items, mode)
    tuning = previous.manifest.tuning
    if tuning is None or mode == "never":
        return Decision(False, "the index's backbone, kept")
    reason = retune_reason(items, tuning)
    return Decision(True, f"tuned again: {reason}") if reason else Decision(False, "the index's tuned backbone, kept")


def _plan(catalog: Path, out: Path, options: BuildOptions, embedder: ProductEmbedder | None) -> _Plan:
    items = read_catalog(catalog, Path(options.manifest) if options.manifest else None)
    previous = Previous.read(out) if options.update else None
    options = _resolve(options, previous)
    spec = parse_store(options.store)
    tuning = _tuning(options, items, previous)
    embedder = embedder or _embedder(options, previous, tuning)
    if tuning.tune and not tunable(getattr(embedder, "model", None)):
        if (options.tune or "auto") == "always":
            raise ValueError(f"{embedder.name} cannot be tuned (timm EfficientNet backbones can); build without tuning")
        tuning = Decision(False, f"frozen backbone: {embedder.name} cannot be tuned")
    tuned = tuning.tune or bool(previous and previous.manifest.tuning)
    view_embedder = _view_embedder(embedder, options.head_model, previous, options.device, tuned)
    preload()
    engine = _engine(options.engine, options.ray_address)
    log.info("backbone: %s", tuning.reason)
    return _Plan(catalog, out, options, items, previous, spec, embedder, view_embedder, engine, tuning)


def _embed(
    plan: _Plan, progress: Progress | None, show_bar: bool
) -> tuple[EmbeddedCatalog, list[int], np.ndarray | None, TunedCatalog | None]:
    """Step 1: the catalog's vectors (an update's unchanged photos keep theirs, unless it tunes again), the
    item ids, the second backbone's vectors when the head reads one, and the tuning when this build tunes."""
    previous, tuned = plan.previous, None
    if plan.tuning.tune:
        if show_bar:
            print(f"backbone: {plan.tuning.reason}", flush=True)
        tuned = tune_catalog(plan.items, plan.embedder, plan.tuning.reason, device=plan.options.device,
                             progress=progress)
        embedded = tuned.embedded
    else:
        known = previous.known if previous else None
        embedded = embed_catalog(plan.items, plan.embedder, plan.options.batch_size, progress, show_bar, known,
                                 plan.engine)
    if not embedded.items:
        raise ValueError(f"no readable image in {plan.catalog}: {len(embedded.skipped)} files skipped")
    ids = previous.item_ids(embedded) if previous else list(range(len(embedded.items)))
    views = None
    if plan.view_embedder is not None:
        known_views = previous.known_views if previous else None
        views = embed_again(embedded, plan.view_embedder, show_bar, known_views, plan.engine)
    return embedded, ids, views, tuned


def _fit_head(
    embedded: EmbeddedCatalog, ids: list[int], views: np.ndarray | None, tuned: TunedCatalog | None,
    vote: NeighbourVote,
) -> _Fitted:
    """Step 2: the category head's held-out accuracy, then the head refitted on every photo; and the curve that
    turns a hit's cosine into the similarity shown (`calibration`)."""
    labels = [item.category for item in embedded.items]
    preloaded()
    accuracy, start = held_out_accuracy(embedded.vectors, labels, vote=vote, views=views)
    head = CategoryHead.fit(head_input(embedded.vectors, views), labels, start=start)
    return _Fitted(embedded, ids, views, tuned, head, accuracy, SimilarityCalibration.fit(embedded.vectors, labels))


def _rows(embedded: EmbeddedCatalog, ids: list[int]) -> list[dict]:
    """The catalog's rows (`index.ROW_FIELDS`)."""
    return [
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


def _write_parts(folder: Path, plan: _Plan, fitted: _Fitted, store: VectorStore, show_bar: bool) -> dict:
    """Step 3: every part of the index but its manifest (written last: a folder without one is never a
    finished index); returns the manifest's entries for them."""
    embedded, ids, previous = fitted.embedded, fitted.ids, plan.previous
    product_index.write_rows(folder, _rows(embedded, ids))
    sources = [item.path for item in embedded.items]
    earlier = product_index.thumbnails_dir(previous.folder) if previous else None
    thumbnails = write_thumbnails(sources, embedded.digests, product_index.thumbnails_dir(folder), ids, earlier)
    product_index.write_head(folder, fitted.head)
    _write_backbone(folder, plan, fitted)
    store.add(ids, embedded.vectors, fitted.labels)
    parts = {"thumbnails": thumbnails, "store": {**store.persist(), "address": plan.options.store}}
    if fitted.views is not None:
        product_index.write_head_views(folder, ids, fitted.views)
    if plan.options.local_features:
        parts["local_features"] = _write_local_features(folder, previous, ids, sources)
    if plan.options.read_text:
        read_before = printed_words.reusable(previous.folder, previous.manifest.words) if previous else None
        parts["words"] = printed_words.write_words(folder, ids, sources, embedded.digests, read_before, show_bar)
    return parts


def _write_backbone(folder: Path, plan: _Plan, fitted: _Fitted) -> None:
    """The tuned backbone into the index: this build's, or the one an update keeps (linked, or copied with its
    time stamp, so the embedder's caches keyed on it stay valid)."""
    target = folder / product_index.TUNED_BACKBONE
    if fitted.tuned is not None:
        fitted.tuned.save(plan.embedder.name, target)
    elif plan.reuses_tuning:
        source = plan.previous.folder / product_index.TUNED_BACKBONE
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)


def _tuning_entry(plan: _Plan, fitted: _Fitted) -> dict | None:
    if fitted.tuned is not None:
        return {**fitted.tuned.entry, "weights": product_index.TUNED_BACKBONE}
    return plan.previous.manifest.tuning if plan.reuses_tuning else None


def _write_local_features(folder: Path, previous: Previous | None, ids: list[int], paths: list[Path]) -> dict:
    """The photos' keypoints; an update copies its unchanged photos' (the previous table's memory maps are
    released on return, before the previous folder is deleted)."""
    stored = reusable(previous.folder, previous.manifest.local_features) if previous else None
    return write_local_features(folder, ids, paths, stored)


def _head_entry(fitted: _Fitted, view_embedder: ProductEmbedder | None) -> dict:
    accuracy = fitted.accuracy
    return {"kind": "logistic_regression", "C": DEFAULT_C, "held_out_accuracy": accuracy["accuracy"],
            "held_out_head_only_accuracy": accuracy["head_only_accuracy"],
            "held_out": accuracy["held_out"], "refit_on": len(fitted.labels),
            **({"view": view_embedder.config} if view_embedder else {})}


def _update_counts(previous: Previous | None, ids: list[int]) -> dict | None:
    """An update's kept, added and removed photos (None for a fresh build)."""
    if previous is None:
        return None
    kept = sum(1 for item_id in ids if item_id < previous.next_id)
    return {"kept": kept, "added": len(ids) - kept, "removed": len(previous.ids) - kept}


def _manifest(plan: _Plan, fitted: _Fitted, parts: dict, seconds: float) -> IndexManifest:
    """The index's manifest, from the build's plan, its head and the `parts` written."""
    embedded, options = fitted.embedded, plan.options
    # a tuned index records its base model's config: its weights are its own TUNED_BACKBONE (`embedder_config`)
    embedder = plan.previous.manifest.embedder if plan.reuses_tuning else plan.embedder.config
    return IndexManifest(
        model=plan.embedder.name,
        embedder=embedder,
        dim=plan.embedder.dim,
        items=len(embedded.items),
        counts=dict(sorted(Counter(fitted.labels).items())),
        category_order=fitted.head.classes,
        head=_head_entry(fitted, plan.view_embedder),
        similarity=fitted.calibration.to_dict() if fitted.calibration else None,
        tuning=_tuning_entry(plan, fitted),
        neighbour_vote=asdict(options.vote),
        catalog=str(options.manifest or plan.catalog),
        engine=options.engine,
        cache_hits=embedded.cache_hits,
        skipped_count=len(embedded.skipped),
        skipped=embedded.skipped,
        versions=_versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        update=_update_counts(plan.previous, fitted.ids),
        build_seconds=round(seconds, 2),
        images_per_second=round(len(plan.items) / seconds, 2),
        **parts,
    )


def _write_and_swap_in(plan: _Plan, fitted: _Fitted, started: float, show_bar: bool) -> IndexManifest:
    """Steps 3 and 4: write the index beside `plan.out`, its manifest last, and swap it in. Whatever fails,
    the index at `plan.out` is unchanged and the new store's vectors are dropped."""
    with index_folder.new_build(plan.out) as building:
        store = create_store(plan.spec, building, plan.embedder.dim, plan.options.trees, plan.out.name)
        try:
            parts = _write_parts(building, plan, fitted, store, show_bar)
            store.close()  # before the folder is renamed under an embedded Milvus Lite file
            manifest = _manifest(plan, fitted, parts, time.perf_counter() - started)
            manifest.write(building)  # last: the index is complete
            index_folder.swap_in(building, plan.out)
        except BaseException:
            store.close()
            store.discard()  # a collection outside the folder (the folder itself goes with new_build)
            raise
    return manifest


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
        fast: the frozen build (no tuning, no local features, the head's second view): minutes faster, finds a
            product like the query's rather than the query's own (docs/product-search.md).
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
        local_features: store every photo's SIFT keypoints (their size and extraction time per photo:
            docs/benchmarks.md), so search can verify its first hits (`lookalike.products.spatial`); None: yes
            unless `fast`. An update
            keeps the previous index's choice unless one is given, and copies the unchanged photos' keypoints
            (extracted with today's settings) instead of extracting them again.
        read_text: also read the words printed on every photo (OCR, slow: docs/benchmarks.md), so a query's
            words vote for its category (`lookalike.products.printed_words`): for catalogs of printed packs.
            An update keeps the previous index's choice unless one is given, and reads new photos only.
        head_model: a second product model (`model_zoo.create_embedder` name) whose vector of each photo the
            category head reads beside the index's own (`heads.head_input`); search then runs it on each
            query too (its cost a query: docs/benchmarks.md). "none": the head reads the index's vectors
            alone; None: DEFAULT_HEAD_MODEL for a frozen backbone, none for a tuned one. An update keeps the
            previous index's choice.
        vote: the nearest-photo vote blended into the category ranking (None: `NeighbourVote()`).
        embedder: a ready-made product embedder, instead of `model` and its settings.
        progress: called with (photos done, photos in all); `show_bar` shows a tqdm bar.

    Returns:
        The manifest written (`IndexManifest.to_dict()`, as manifest.json holds it): counts per category,
        the embedder's config, the store, the category head's held-out accuracy, build time and throughput,
        the unreadable files skipped and, for an update, how many photos were kept, added and removed.

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
    with index_folder.write_lock(Path(out)):  # from reading the previous index to the swap: one writer
        plan = _plan(Path(catalog), Path(out), options, embedder)
        embedded, ids, views, tuned = _embed(plan, progress, show_bar)
        fitted = _fit_head(embedded, ids, views, tuned, plan.options.vote)
        replaced = plan.previous.manifest if plan.previous else _current_manifest(plan.out)
        manifest = _write_and_swap_in(plan, fitted, started, show_bar)
        if replaced:
            discard_replaced(plan.out, replaced.store)
    return manifest.to_dict()


def _current_manifest(out: Path) -> IndexManifest | None:
    """The manifest of the index a build will replace, if there is a readable one."""
    try:
        return IndexManifest.read(product_index.locate(out))
    except (FileNotFoundError, ValueError):
        return None
