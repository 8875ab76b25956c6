"""The build's tuning step: decide whether the catalog gains from a backbone tuned on it, and if so tune it and
embed the catalog with it, all from one pass of the frozen stages.

A frozen ImageNet backbone finds a product *like* the query's; tuned on the catalog's own categories and
products (`lookalike.products.backbone_tuning`) it finds the query's product and keeps the whole catalog's
nearest photos in the right category (docs/experiments/backbone-tuning.md). Tuning needs enough labelled photos
to learn from: below `MIN_PHOTOS_PER_CATEGORY` photos a category on average the tuned backbone was no better
than the frozen one on unseen queries, so a small catalog keeps the frozen backbone (`decide`).

The frozen stages run once per photo and its mirror image; the same maps train the last stages and then give
the catalog's vectors (`tail_vectors`), so tuning adds the training epochs to a build, not a second pass of the
network. The tuned weights go into the index (`index.TUNED_BACKBONE`), so search loads them from there and no
checkpoint has to be carried beside it.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lookalike.products.catalog import CatalogItem
from lookalike.products.embedding import EmbeddedCatalog, Progress, content_digests, decode

if TYPE_CHECKING:
    import torch

    from model_zoo.product_embedders import ProductEmbedder

log = logging.getLogger(__name__)

#: A catalog is tuned from this many photos a category on average (docs/experiments/backbone-tuning.md).
MIN_PHOTOS_PER_CATEGORY = 10
#: Epochs of a build's tuning: the unseen queries' figures stop moving after these (same study).
BUILD_EPOCHS = 3
#: An update tunes again when fewer than this share of its photos were in the tuning (same study).
MIN_TUNED_SHARE = 2 / 3
TUNING_MODES = ("auto", "always", "never")


@dataclass
class TuneConfig:
    """Backbone tuning's settings (`backbone_tuning.train_tail`; `train-embedding --tune-blocks` shows them)."""

    blocks: int = 2  # trailing stages trained (with the head convolution); the rest stay frozen
    epochs: int = 4
    lr: float = 1e-4
    proxy_lr: float = 1e-2  # proxies move faster than the pretrained weights (proxy-loss practice)
    temperature: float = 0.05
    batch_size: int = 32
    seed: int = 0
    crop: float = 0.7  # smallest side of a batch's random crop of the frozen maps, as a fraction (1: no crop)


@dataclass(frozen=True)
class Decision:
    """Whether a build tunes the backbone, and why (shown by the build and kept in its manifest)."""

    tune: bool
    reason: str


def decide(items: list[CatalogItem], mode: str = "auto") -> Decision:
    """Tune when asked (`mode` "always"), never when told not to ("never"); "auto": when the catalog has
    MIN_PHOTOS_PER_CATEGORY photos a category on average, and two categories or more to tell apart.

    Raises:
        ValueError: an unknown mode, or "always" for a catalog of one category."""
    if mode not in TUNING_MODES:
        raise ValueError(f"tuning must be one of {', '.join(TUNING_MODES)}, got {mode!r}")
    categories = len({item.category for item in items})
    average = len(items) / max(categories, 1)
    if mode == "never":
        return Decision(False, "frozen backbone (asked for)")
    if categories < 2:
        if mode == "always":
            raise ValueError("tuning needs two categories or more to tell apart; this catalog has one")
        return Decision(False, "frozen backbone: one category, nothing to tune for")
    if mode == "always":
        return Decision(True, "tuned on the catalog (asked for)")
    if average < MIN_PHOTOS_PER_CATEGORY:
        return Decision(False, f"frozen backbone: {average:.0f} photos a category on average, tuning needs "
                               f"{MIN_PHOTOS_PER_CATEGORY} (build with --tune always to force it)")
    return Decision(True, f"tuned on the catalog ({average:.0f} photos a category on average)")


def tunable(model: object) -> bool:
    """Whether a network is one tuning knows how to split into frozen and trained stages (a timm EfficientNet,
    as the defaults)."""
    return all(hasattr(model, name) for name in ("conv_stem", "bn1", "blocks", "conv_head", "bn2"))


@dataclass
class TunedCatalog:
    """The catalog embedded by the backbone tuned on it, the tuned weights, and the manifest's `tuning` entry."""

    embedded: EmbeddedCatalog
    state: dict[str, torch.Tensor]
    config: TuneConfig
    entry: dict

    def save(self, model: str, path: Path) -> None:
        """The tuned backbone into the index being written (`index.TUNED_BACKBONE`), atomically."""
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
    """Tune `embedder`'s last stages on the readable `items` and embed them with the result (unreadable files
    are skipped and listed, as `embed_catalog` lists them). Each photo's gallery thumbnail is made on the way;
    `progress` hears of each photo through the frozen stages, then of each epoch."""
    import torch

    from lookalike.products.backbone_tuning import Tail, frozen_maps, tail_vectors, train_tail, tuned_state

    config = config or TuneConfig(epochs=BUILD_EPOCHS)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
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

    def epoch_done(epoch: int, _tail: object) -> None:
        if progress is not None:
            progress(epoch, config.epochs, "tuning the backbone: epoch")

    tail = Tail(copy.deepcopy(embedder.model), config.blocks).to(device).eval()
    frozen = frozen_maps(len(readable), prepare, tail, embedder, device)
    skipped += [{"path": str(items[readable[position]].path), "reason": reason_}
                for position, reason_ in frozen.skipped]
    kept = [readable[position] for position in frozen.kept]
    frozen_seconds = time.perf_counter() - started
    trained = train_tail(tail, frozen.maps, [items[n].category for n in kept], [items[n].product_id for n in kept],
                         config, device, on_epoch=epoch_done)
    vectors = tail_vectors(tail, frozen, device)
    embedded = EmbeddedCatalog(
        items=[items[n] for n in kept],
        vectors=vectors.astype(np.float32, copy=False),
        digests=[digests[n] for n in kept],
        sizes=[(records[n]["width"], records[n]["height"]) for n in kept],
        skipped=skipped,
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


def retune_reason(items: list[CatalogItem], tuning: dict) -> str | None:
    """Why an update should tune again rather than reuse its index's tuned backbone, or None: a category the
    tuning never saw, or fewer than MIN_TUNED_SHARE of the photos tuned on (`tuning["photos"]` against the
    catalog's size: what the update adds is never in the tuning)."""
    seen = set(tuning.get("category_names") or ())
    new = sorted({item.category for item in items} - seen) if seen else []
    if new:
        return f"new categories the tuning never saw ({', '.join(new[:5])})"
    share = tuning.get("photos", 0) / max(len(items), 1)
    if share < MIN_TUNED_SHARE:
        return f"only {share:.0%} of the catalog's photos were in the tuning (tuned again under {MIN_TUNED_SHARE:.0%})"
    return None
