"""manifest.json, typed: the index's core (its embedder, catalog, head, store and build report) and each
part's entry, written last (a folder without it is not a finished index).

The core fields are `IndexManifest`'s; every other top-level key is a part's entry (`parts`: "thumbnails",
"local_features", "words", "similarity", "neighbour_vote", "head_view", ...), read only by the part that wrote
it (`lookalike.products.parts`). Parsing, checking and atomic rewriting are the base's
(`lookalike.vectors.manifest.Manifest`, shared with the face gallery): the core does not know its parts, so they
are what the base keeps as keys it does not know, and a part a reader lacks is kept as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lookalike.products.errors import IndexCorruptError, rebuild_hint
from lookalike.vectors.manifest import Manifest

#: The manifest's `format` names the kind of folder and the version of its layout ("lookalike.product-index/2").
FORMAT_NAME = "lookalike.product-index"
#: 2: item ids and a pluggable vector store. A reader reads the versions in READABLE_VERSIONS.
FORMAT_VERSION = 2
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
TUNED_BACKBONE = "backbone.pt"  # the backbone tuned on the catalog at build time (`tuning`), if it was


@dataclass(kw_only=True)
class IndexManifest(Manifest):
    """The core of manifest.json; fields an index may lack are None (left out of the file)."""

    FORMAT_NAME: ClassVar[str] = FORMAT_NAME
    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION
    READABLE_VERSIONS: ClassVar[tuple[int, ...]] = (2,)
    KIND: ClassVar[str] = "product index"

    model: str
    embedder: dict  # the product embedder's config (`model_zoo.create_embedder(**embedder)`)
    dim: int
    metric: str = "cosine"
    items: int
    counts: dict[str, int]  # photos per category
    category_order: list[str]  # the head's classes
    head: dict  # kind, held-out accuracy, ...
    catalog: str = ""
    engine: str = "local"
    cache_hits: int = 0
    skipped_count: int = 0
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"} of each unreadable file
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    update: dict | None = None  # an update's kept / added / removed counts
    store: dict  # the store's entry (`lookalike.vectors.stores.open_store`), with the `address` built from
    tuning: dict | None = None  # `tuning.tune_catalog`'s entry when the backbone was tuned (TUNED_BACKBONE)
    build_seconds: float | None = None
    images_per_second: float | None = None

    @classmethod
    def error(cls, folder: Path | str, problem: str) -> Exception:
        return IndexCorruptError(f"{problem}: {rebuild_hint(folder)}, or index_builder.py")

    @property
    def parts(self) -> dict[str, Any]:
        """Part name -> its entry (`lookalike.products.parts`): every key of the file the core does not know."""
        return self.extra

    def part(self, name: str) -> Any:
        """The entry the part `name` wrote, or None for an index built without it."""
        return self.extra.get(name)

    def embedder_config(self, folder: Path) -> dict:
        """The product embedder's config for `model_zoo.create_embedder(**config)`: a tuned index's weights are
        its own TUNED_BACKBONE in `folder` (where the index is now, so a moved index still loads)."""
        if self.tuning is None:
            return dict(self.embedder)
        return {**self.embedder, "weights": str(Path(folder) / TUNED_BACKBONE)}


def read_manifest(folder: Path) -> IndexManifest:
    """`IndexManifest.read`."""
    return IndexManifest.read(folder)
