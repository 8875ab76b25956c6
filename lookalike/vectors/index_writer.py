"""The one way an index folder is written, for every kind of index (the product index, a face gallery):
the writer's lock, the replaced index's vectors, the new vector store, the parts, the manifest last, the swap.

    with IndexWriter(out, what="gallery") as writer:     # takes the lock, notes the replaced index's store
        previous = ...read the index being updated (still under the lock)...
        manifest = writer.write(spec, dim, trees, fill)  # fill(folder, store) -> the manifest to write last

The lock is held from reading the index an update starts from to the swap, so two builds of one folder never
interleave (a second writer gets `index_folder.IndexLockedError` naming the first). `write` builds beside
the folder (`index_folder.new_build`), lets `fill` write every part and the new store's vectors, closes the
store (before the folder is renamed under an embedded Milvus Lite file), writes the manifest last and swaps
the folder in. Whatever fails, the index in use is untouched, the building folder removed and the new
store's vectors outside it (a Milvus collection) dropped; after a swap, the replaced index's are dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Protocol, TypeVar

from lookalike.vectors import index_folder
from lookalike.vectors.manifest import MANIFEST
from lookalike.vectors.stores import StoreSpec, VectorStore, create_store, discard_replaced

__all__ = ["IndexWriter", "WritableManifest"]


class WritableManifest(Protocol):
    def write(self, folder: Path) -> None:
        """Write the manifest into `folder`: the last file of a finished index."""


M = TypeVar("M", bound=WritableManifest)


class IndexWriter:
    """The one writer of the index folder `out`, from `__enter__` (its lock taken) to `__exit__`.

    Args:
        out: the index folder.
        marker: the index's file written last (its manifest), whose "store" entry names the vectors a
            successful `write` drops when they live outside the folder.
        what: the index's name in a warning about those vectors ("index", "gallery").

    Attributes:
        replaced_store: the store entry of the index `write` replaces, read from `marker` on entering
            (None: no readable index there); a caller that read the previous index itself may set it.
    """

    def __init__(self, out: str | Path, *, marker: str = MANIFEST, what: str = "index") -> None:
        self.out, self.marker, self.what = Path(out), marker, what
        self.replaced_store: dict | None = None
        self._exit = ExitStack()
        self._state = "new"  # "writing" inside the `with` block, "written" after its write, then "closed"

    def __enter__(self) -> IndexWriter:
        """Take the writer's lock (IndexLockedError when another build holds it) and note the store entry
        of the index there now."""
        self._exit.enter_context(index_folder.write_lock(self.out))
        self.replaced_store = self._store_entry()
        self._state = "writing"
        return self

    def __exit__(self, *exc: object) -> None:
        self._state = "closed"
        self._exit.close()

    def _store_entry(self) -> dict | None:
        try:
            raw = json.loads((index_folder.locate(self.out, self.marker) / self.marker).read_bytes())
        except (OSError, ValueError):
            return None
        entry = raw.get("store") if isinstance(raw, dict) else None
        return entry if isinstance(entry, dict) else None

    def write(self, spec: StoreSpec, dim: int, trees: int, fill: Callable[[Path, VectorStore], M]) -> M:
        """Build the new index and swap it in; returns the manifest `fill` made, as written.

        Args:
            spec, dim, trees: the new vector store (`lookalike.vectors.stores.create_store`).
            fill: `fill(folder, store)` writes every part of the index into the building `folder` and its
                vectors into `store`, and returns the manifest (written last, by this method).

        Raises:
            IndexWriteError: the disk refused the new index; the one in use is unchanged.
            RuntimeError: outside the `with` block, or a second write in it.
            whatever `fill` raises, the index in use unchanged.
        """
        if self._state != "writing":
            raise RuntimeError("IndexWriter.write runs once, inside `with IndexWriter(out) as writer:`")
        self._state = "written"
        with index_folder.new_build(self.out) as building:
            store = create_store(spec, building, dim, trees, self.out.name)
            try:
                manifest = fill(building, store)
                store.close()  # before the folder is renamed under an embedded Milvus Lite file
                manifest.write(building)  # last: the index is complete
                index_folder.swap_in(building, self.out)
            except BaseException:
                store.close()
                store.discard()  # vectors outside the folder (the folder itself goes with new_build)
                raise
        discard_replaced(self.out, self.replaced_store, self.what)
        return manifest
