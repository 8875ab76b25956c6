"""What a build settles before it embeds a photo, in one place (`resolve`): the options against the index an
update starts from, whether the backbone is tuned, the embedder, the engine, and the parts the new index will
have (each part's own rule, `Part.chosen`, over a preset: `parts.PRESETS`), each model made first so a wrong
name fails at once."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lookalike.products import parts as registry
from lookalike.products.catalog import CatalogItem, read_catalog
from lookalike.products.embedding import Engine, local_engine
from lookalike.products.options import ENGINES, BuildOptions
from lookalike.products.parts import Part
from lookalike.products.previous import Previous
from lookalike.products.tuning import Decision, decide, retune_reason, tunable
from lookalike.vectors.stores import DEFAULT_STORE, StoreSpec, parse_store

if TYPE_CHECKING:  # the model zoo (and torch) load when an embedder is first needed
    from model_zoo.product_embedders import ProductEmbedder

log = logging.getLogger(__name__)


@dataclass
class Plan:
    catalog: Path
    out: Path
    options: BuildOptions  # every None settled
    items: list[CatalogItem]
    previous: Previous | None
    spec: StoreSpec
    embedder: ProductEmbedder
    engine: Engine
    tuning: Decision  # whether this build tunes the backbone (an update reusing its tuned one does not)
    parts: list[type[Part]]
    state: dict[str, Any] = field(default_factory=dict)  # each part's `setup`

    @property
    def reuses_tuning(self) -> bool:
        """An update that keeps its index's tuned backbone."""
        return self.previous is not None and self.previous.manifest.tuning is not None and not self.tuning.tune


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


def resolve(catalog: Path, out: Path, options: BuildOptions, embedder: ProductEmbedder | None = None) -> Plan:
    """The build's plan: the catalog read, the index it updates read (under the caller's writer lock), every
    option settled (an update keeps the previous index's store and parts unless told otherwise), the tuning
    decided, the embedder, engine and each chosen part's models made."""
    items = read_catalog(catalog, Path(options.manifest) if options.manifest else None)
    previous = Previous.read(out) if options.update else None
    before = previous.manifest if previous else None
    options = replace(options, store=options.store or (before.store["address"] if before else DEFAULT_STORE))
    tuning = _tuning(options, items, previous)
    embedder = embedder or _embedder(options, previous, tuning)
    if tuning.tune and not tunable(getattr(embedder, "model", None)):
        if (options.tune or "auto") == "always":
            raise ValueError(f"{embedder.name} cannot be tuned (timm EfficientNet backbones can); build without tuning")
        tuning = Decision(False, f"frozen backbone: {embedder.name} cannot be tuned")
    tuned = tuning.tune or bool(before and before.tuning)
    preset = registry.PRESETS["fast" if options.fast else "default"]
    options = replace(options, model=embedder.name)
    parts = [kind for kind in registry.PARTS if kind.chosen(options, before, tuned, kind.name in preset)]
    state = {kind.name: kind.setup(options, before) for kind in parts}
    engine = _engine(options.engine, options.ray_address)
    log.info("backbone: %s; parts: %s", tuning.reason, ", ".join(kind.name for kind in parts))
    return Plan(catalog, out, options, items, previous, parse_store(options.store), embedder, engine, tuning, parts,
                state)
