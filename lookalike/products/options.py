"""How to build a product index: the keywords of `build_index` in one typed object, so the CLI maps its
arguments onto them once and a caller can keep a set of them. None: the default, or for an update the
previous index's choice; `products.plan.resolve` settles every None in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lookalike.products.heads import NeighbourVote
from model_zoo.registry import DEFAULT_PRODUCT_MODEL

#: Annoy trees per index; with the searcher's over-fetch, recall@30 measured by `eval-products`.
DEFAULT_TREES = 32
ENGINES = ("local", "ray")


@dataclass(kw_only=True)
class BuildOptions:
    """The keywords of `build_index` (documented there)."""

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
    # the parts' own options (`Part.option`): None leaves the choice to the preset or the index updated
    local_features: bool | None = None
    read_text: bool | None = None
    head_model: str | None = None
    vote: NeighbourVote | None = None
