"""Backbone tuning's policy: when a build tunes the backbone on its catalog, when an update tunes it again,
which networks can be tuned, and the settings a tuning runs with. No torch here: the CLI shows these defaults
in `--help`, and the build decides before it loads a network.

A frozen ImageNet backbone finds a product *like* the query's; tuned on the catalog's own categories and
products it finds the query's product and keeps the whole catalog's nearest photos in the right category
(docs/experiments/backbone-tuning.md). Tuning needs enough labelled photos to learn from: below
`MIN_PHOTOS_PER_CATEGORY` photos a category on average the tuned backbone was no better than the frozen one on
unseen queries, so a small catalog keeps the frozen backbone (`decide`).

The training itself is `lookalike.products.backbone_tuning` (the mechanism); `lookalike.products.tuning` runs it
on a catalog (`tune_catalog`, the one orchestrator: the build and `train-embedding --tune-blocks` alike).
"""

from __future__ import annotations

from dataclasses import dataclass

from lookalike.products.catalog import CatalogItem

#: A catalog is tuned from this many photos a category on average (docs/experiments/backbone-tuning.md).
MIN_PHOTOS_PER_CATEGORY = 10
#: Epochs of a tuning, at TuneConfig.lr: 2 at 2e-4 scored as 3 at 1e-4 did on unseen queries of the half split
#: and GroceryStore val, in two thirds of the time (docs/experiments/start-and-build-speed.md).
BUILD_EPOCHS = 2
#: Whether the tuning's frozen pass also runs each photo's mirror image (its maps give the vector's mirror half).
#: False: the photo's maps, flipped, stand in for them (`backbone_tuning.tail_vectors`), halving the frozen pass:
#: within noise of the mirror pass on the half split and GroceryStore val (docs/experiments/start-and-build-speed.md;
#: the default build's table, docs/benchmarks.md).
MIRROR_PASS = False
#: An update tunes again when fewer than this share of its photos were in the tuning (same study).
MIN_TUNED_SHARE = 2 / 3
TUNING_MODES = ("auto", "always", "never")


@dataclass
class TuneConfig:
    """Backbone tuning's settings (`backbone_tuning.train_tail`): the build's, and `train-embedding
    --tune-blocks`'s defaults (`--epochs`, `--lr` override them there)."""

    blocks: int = 2  # trailing stages trained (with the head convolution); the rest stay frozen
    epochs: int = BUILD_EPOCHS
    lr: float = 2e-4
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


def tunable(model: object) -> bool:
    """Whether a network is one tuning knows how to split into frozen and trained stages (a timm EfficientNet,
    as the defaults)."""
    return all(hasattr(model, name) for name in ("conv_stem", "bn1", "blocks", "conv_head", "bn2"))
