"""Backbone tuning on a catalog, the one orchestrator: the build's tuning step (`tune_catalog`) and
`train-embedding --tune-blocks` (`tune_backbone`, which keeps the checkpoint and a report instead of an index)
run the same decoding, frozen pass, training and skipped-file report, with the same default epochs.

The frozen stages run once per photo and its mirror image (`frozen_catalog`, decoding as the build's embedding
does, gallery thumbnail included); the same maps train the last stages and then give the catalog's vectors
(`backbone_tuning.tail_vectors`), so tuning adds the training epochs to a build, not a second pass of the
network (the same pass gives the query-side vectors the build's fits query with: `tail_sides`). The tuned
weights go into the index (`index.TUNED_BACKBONE`), so search loads them from there and no
checkpoint has to be carried beside it.

When to tune, the settings and their defaults are `lookalike.products.tuning_policy`'s (re-exported here, where
the build reads them); the training itself is `lookalike.products.backbone_tuning`'s. Both are imported one
way: neither imports this module.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lookalike.products.catalog import CatalogItem
from lookalike.products.embedding import EmbeddedCatalog, Progress, content_digests, decode
from lookalike.products.tuning_policy import (
    BUILD_EPOCHS,
    MIN_PHOTOS_PER_CATEGORY,
    MIN_TUNED_SHARE,
    TUNING_MODES,
    Decision,
    TuneConfig,
    decide,
    retune_reason,
    tunable,
)

if TYPE_CHECKING:
    import torch

    from lookalike.products.backbone_tuning import FrozenMaps, Tail
    from model_zoo.product_embedders import ProductEmbedder

__all__ = [
    "BUILD_EPOCHS", "MIN_PHOTOS_PER_CATEGORY", "MIN_TUNED_SHARE", "TUNING_MODES", "Decision", "FrozenCatalog",
    "TuneConfig", "TunedCatalog", "decide", "frozen_catalog", "retune_reason", "tunable", "tune_backbone",
    "tune_catalog",
]

log = logging.getLogger(__name__)


@dataclass
class FrozenCatalog:
    """The frozen stages' maps of a catalog's readable photos (`frozen.kept`: their numbers in the item list),
    each kept photo's content digest and full size, and the files skipped, listed as `embed_catalog` lists them
    ({"path", "reason"})."""

    frozen: FrozenMaps
    digests: list[str]
    sizes: list[tuple[int, int]]
    skipped: list[dict[str, str]]


def frozen_catalog(
    items: list[CatalogItem], embedder: ProductEmbedder, tail: Tail, device: str, progress: Progress | None = None
) -> FrozenCatalog:
    """`tail`'s frozen stages over every readable item (`backbone_tuning.frozen_maps`), each photo decoded as the
    build's embedding decodes it (`embedding.decode`: the same pixels, its thumbnail made on the way)."""
    from lookalike.products.backbone_tuning import FrozenMaps, frozen_maps

    by_path, skipped = content_digests(items)
    digests = [by_path.get(item.path) for item in items]
    readable = [number for number, digest in enumerate(digests) if digest is not None]
    records: dict[int, dict[str, int]] = {}

    def prepare(position: int) -> np.ndarray:
        number = readable[position]
        pixels, records[number] = decode(embedder, items[number].path, digests[number])
        if progress is not None:
            progress(len(records), len(readable), "reading photo")
        return pixels

    frozen = frozen_maps(len(readable), prepare, tail, embedder, device)
    skipped += [{"path": str(items[readable[position]].path), "reason": reason}
                for position, reason in frozen.skipped]
    kept = [readable[position] for position in frozen.kept]
    return FrozenCatalog(
        FrozenMaps(frozen.maps, frozen.mirrored, kept, []),
        [digests[n] for n in kept],
        [(records[n]["width"], records[n]["height"]) for n in kept],
        skipped,
    )


@dataclass
class TunedCatalog:
    """The catalog embedded by the backbone tuned on it, the tuned weights, and the manifest's `tuning` entry."""

    embedded: EmbeddedCatalog
    state: dict[str, torch.Tensor]
    config: TuneConfig
    entry: dict

    def save(self, model: str, path: Path) -> None:
        """The tuned backbone into the index being written (`index.TUNED_BACKBONE`), or a checkpoint, atomically."""
        from lookalike.products.backbone_tuning import save_backbone

        save_backbone(self.state, model, self.config, path)


def tune_catalog(
    items: list[CatalogItem],
    embedder: ProductEmbedder,
    reason: str,
    config: TuneConfig | None = None,
    device: str | None = None,
    progress: Progress | None = None,
) -> TunedCatalog:
    """Tune a copy of `embedder`'s last stages on the readable `items` (category, and product_id where 2+ photos
    share one) and embed them with the result (unreadable files are skipped and listed, as `embed_catalog`
    lists them). `config` defaults to `TuneConfig()` (BUILD_EPOCHS epochs); `progress` hears of each photo
    through the frozen stages, then of each epoch."""
    import torch

    from lookalike.products.backbone_tuning import Tail, tail_sides, train_tail, tuned_state

    config = config or TuneConfig()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()

    def epoch_done(epoch: int, _tail: object) -> None:
        if progress is not None:
            progress(epoch, config.epochs, "tuning the backbone: epoch")

    tail = Tail(copy.deepcopy(embedder.model), config.blocks).to(device).eval()
    read = frozen_catalog(items, embedder, tail, device, progress)
    kept = read.frozen.kept
    frozen_seconds = time.perf_counter() - started
    log.info("frozen stages: %d photos in %.0f s (%d skipped)", len(kept), frozen_seconds, len(read.skipped))
    trained = train_tail(tail, read.frozen.maps, [items[n].category for n in kept],
                         [items[n].product_id for n in kept], config, device, on_epoch=epoch_done)
    vectors, query_vectors = tail_sides(tail, read.frozen, device)
    embedded = EmbeddedCatalog(
        items=[items[n] for n in kept],
        vectors=vectors.astype(np.float32, copy=False),
        digests=read.digests,
        sizes=read.sizes,
        skipped=read.skipped,
        query_vectors=query_vectors.astype(np.float32, copy=False),
    )
    entry = {
        "reason": reason,
        "config": asdict(config),
        "photos": len(kept),
        "products": trained["products"],
        "categories": trained["categories"],
        "category_names": sorted({items[n].category for n in kept}),
        "epochs": trained["epochs"],
        "frozen_pass_seconds": round(frozen_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "device": device,
    }
    log.info("tuned %s on %d photos in %.0f s", embedder.name, len(kept), entry["seconds"])
    return TunedCatalog(embedded, tuned_state(tail), config, entry)


def tune_backbone(
    items: list[CatalogItem], embedder: ProductEmbedder, out_dir: Path, config: TuneConfig | None = None,
    device: str | None = None,
) -> dict:
    """`train-embedding --tune-blocks`: `tune_catalog`, keeping the tuned backbone as `out_dir/backbone.pt` (for
    `lookalike build --model NAME --weights`) instead of an index; returns the report, also written to
    `out_dir/tuning_result.json`: the `tuning` entry a build records, the model, the files skipped and the
    checkpoint."""
    tuned = tune_catalog(items, embedder, "train-embedding --tune-blocks", config, device)
    checkpoint = Path(out_dir) / "backbone.pt"
    tuned.save(embedder.name, checkpoint)
    result = {"model": embedder.name, **tuned.entry, "skipped": tuned.embedded.skipped, "checkpoint": str(checkpoint)}
    (Path(out_dir) / "tuning_result.json").write_text(json.dumps(result, indent=2))
    return result
