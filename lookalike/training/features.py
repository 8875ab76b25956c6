"""Frozen backbone features for a list of photos, computed once and read from the engines' caches.

Training heads on cached features (instead of images) is what lets the report's grids and the
triplet embedding run on a 2-core CPU in minutes. A backbone is either a face model (the photo goes
through the face engine: detect, align, embed) or a product embedder (the whole photo); both cache
by image content and model, so a rerun or the index builder's earlier run costs nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_zoo.registry import UnknownModelError, get_entry


@dataclass(frozen=True)
class Backbone:
    kind: str  # "face" or "product"
    name: str

    @property
    def metric(self) -> str:
        """How the frozen features are compared (product embeddings are unit vectors)."""
        return get_entry(self.kind, self.name).cfg.metric

    def spec(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name}


def resolve_backbone(name: str) -> Backbone:
    """The face or product model registered as `name` (face and product names never clash)."""
    # importing registers the product models, the face models, `efficientnet_lite0_face` and `projected`
    import model_zoo.imagenet_faces
    import model_zoo.projected  # noqa: F401

    for kind in ("face", "product"):
        try:
            get_entry(kind, name)
            return Backbone(kind, name)
        except UnknownModelError:
            continue
    raise UnknownModelError(f"no face or product model is registered as {name!r}")


def face_features(paths: list[Path], model: str) -> np.ndarray:
    """Face-engine embeddings: detect, take the face nearest the centre, align, embed (right for
    face-centred photos such as LFW; a centred box stands in where no face is found)."""
    from lookalike.faces.cached import embed_files

    return embed_files(paths, model, processes=1, quiet=True).vectors


def product_features(paths: list[Path], model: str) -> np.ndarray:
    """Product-engine embeddings of whole photos, through the index builder's embedding cache."""
    from lookalike.products.catalog import CatalogItem
    from lookalike.products.embedding import embed_catalog
    from model_zoo.product_embedders import create_embedder

    items = [CatalogItem(Path(p), "") for p in paths]
    embedded = embed_catalog(items, create_embedder(model), show_bar=False)
    if embedded.skipped:
        raise ValueError(f"{len(embedded.skipped)} photo(s) cannot be read, e.g. {embedded.skipped[0]}")
    return embedded.vectors


def backbone_features(paths: list[Path], backbone: Backbone) -> np.ndarray:
    if backbone.kind == "face":
        return face_features(paths, backbone.name)
    return product_features(paths, backbone.name)
