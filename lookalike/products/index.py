"""The on-disk product index's core: what every index has, and how it loads. An index is this core plus named
parts (`lookalike.products.parts`), each of which writes and opens its own files.

    INDEX_DIR/
      manifest.json   MANIFEST: `IndexManifest` (the core's fields, and each part's entry), written last
      catalog.sqlite  CATALOG: one row per indexed photo, keyed by its stable item id (`rows`)
      head.npz        HEAD: the category head
      backbone.pt     TUNED_BACKBONE: the backbone tuned on the catalog, if it was (`tuning`)
      annoy/ or milvus/   the vectors, when the store lives in the folder (a Milvus server holds its own); each
                      store names its own folder (`lookalike.vectors.stores`)
      ...             each part's files (thumbs/, local/, words.json, head_views.npz)

The folder's life cycle (one writer at a time, built beside it, swapped in atomically, found again after a
crash, a new generation per swap) is `lookalike.vectors.index_folder`'s, with `MANIFEST` as the file written
last.

Rows are read from SQLite when a query needs them, and the vectors stay in the store (memory-mapped or on a
Milvus server), so a large catalog costs the app little memory. Every file is opened while the index loads
(and read again should a build swap the folder meanwhile), so a searcher keeps reading the folder it loaded
even after a build replaced it. Loading checks that the core is present, readable and consistent, and fails
with `IndexMissingError` or `IndexCorruptError` (subclasses of FileNotFoundError / ValueError) naming the
damaged file and the command that rebuilds the index (`rebuild_hint`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lookalike.products.errors import (
    DAMAGED,
    MANIFEST,
    IndexCorruptError,
    IndexMissingError,
    damaged,
    read_part,
    rebuild_hint,
)
from lookalike.products.heads import CategoryHead
from lookalike.products.manifest import FORMAT, TUNED_BACKBONE, IndexManifest, read_manifest
from lookalike.products.mlp_head import MlpCategoryHead, load_head
from lookalike.products.rows import CATALOG, ROW_FIELDS, CatalogRows, write_rows
from lookalike.vectors import index_folder
from lookalike.vectors.stores import VectorStore, open_store

__all__ = [
    "CATALOG", "FORMAT", "HEAD", "MANIFEST", "ROW_FIELDS", "TUNED_BACKBONE", "CatalogRows",
    "IndexCorruptError", "IndexManifest", "IndexMissingError", "LoadedIndex", "backup_dir", "damaged",
    "index_exists", "load_index", "locate", "read_manifest", "rebuild_hint", "write_head", "write_rows",
]

HEAD = "head.npz"


@dataclass
class LoadedIndex:
    """The core of an opened index: what every part reads from."""

    folder: Path
    manifest: IndexManifest
    rows: CatalogRows
    head: CategoryHead | MlpCategoryHead
    store: VectorStore

    def close(self) -> None:
        self.store.close()
        self.rows.close()


def backup_dir(index_dir: Path) -> Path:
    """Where a build parks the previous index while swapping in the new one (`index_folder.backup_dir`)."""
    return index_folder.backup_dir(index_dir)


def locate(index_dir: Path) -> Path:
    """The folder to load: the index itself, or the parked previous one if a swap was interrupted."""
    try:
        return index_folder.locate(Path(index_dir), MANIFEST)
    except FileNotFoundError:
        raise IndexMissingError(f"no product index at {index_dir} (build one with index_builder.py)") from None


def index_exists(index_dir: Path) -> bool:
    """Whether a finished product index is there to load at `index_dir`."""
    return index_folder.exists(Path(index_dir), MANIFEST)


def write_head(folder: Path, head: CategoryHead) -> None:
    head.save(Path(folder) / HEAD)


def load_index(index_dir: Path) -> LoadedIndex:
    """Open the core of the index at `index_dir` (or its parked backup, should a swap have died half-way);
    should a build swap in a new folder while it loads, it loads again, so its files always come from one build.

    Raises:
        IndexMissingError: no index there.
        IndexCorruptError: a file is missing, damaged or inconsistent; the message names the file and the
            command that rebuilds the index.
    """
    index_dir = Path(index_dir)
    loaded, _ = index_folder.read_stable(index_dir, lambda: _load(index_dir), LoadedIndex.close)
    return loaded


def _load(index_dir: Path) -> LoadedIndex:
    folder = locate(index_dir)
    manifest = IndexManifest.read(folder)
    head = read_part(folder, HEAD, load_head)
    rows = read_part(folder, CATALOG, CatalogRows)
    try:
        store = open_store(folder, manifest.store)
    except DAMAGED as exc:
        rows.close()
        raise IndexCorruptError(f"product index at {folder}: its vectors cannot be read ({exc}); "
                                f"{rebuild_hint(folder)}") from None
    count = manifest.items
    held = store.count()
    if len(rows) != count or held != count:
        store.close()
        rows.close()
        raise IndexCorruptError(
            f"product index at {folder} is inconsistent: manifest says {count} items, the catalog has "
            f"{len(rows)} rows and the {store.kind} store {held} vectors; {rebuild_hint(folder)}"
        )
    return LoadedIndex(folder, manifest, rows, head, store)
