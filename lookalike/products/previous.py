"""The index an update starts from: its rows by content, its ids, and its store to read vectors from, so an
update embeds only new or changed photos and unchanged photos keep their ids (and every part's files)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.images.cache import Entry
from lookalike.products.embedding import EmbeddedCatalog
from lookalike.products.index import load_index
from lookalike.products.manifest import IndexManifest
from lookalike.vectors.stores import open_store


@dataclass
class Previous:
    folder: Path
    manifest: IndexManifest
    rows: dict[str, dict]  # sha256 -> row (the first row of that content)
    ids: dict[tuple[str, str], int]  # (path, sha256) -> item id
    next_id: int

    @classmethod
    def read(cls, out: Path) -> Previous:
        loaded = load_index(out)
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
        return self.entries(rows, vectors)

    @staticmethod
    def entries(rows: list[dict], vectors: Iterable[np.ndarray]) -> dict[str, Entry]:
        """Cache entries (vector, size record) of `rows`, by content: what `embed_catalog` takes as known."""
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

    def counts(self, ids: list[int]) -> dict[str, int]:
        """An update's kept, added and removed photos."""
        kept = sum(1 for item_id in ids if item_id < self.next_id)
        return {"kept": kept, "added": len(ids) - kept, "removed": len(self.ids) - kept}
