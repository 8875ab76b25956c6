"""The embedded default store: Annoy forests in the index folder, vectors memory-mapped from .npy files.

    INDEX_DIR/annoy/
      ids.npy          int64 [N] item ids, ascending (row r holds item ids[r])
      vectors.npy      [N, dim] unit vectors, float32 or float16, memory-mapped for the exact re-rank
      categories.npy   int32 [N] category numbers (names in the manifest entry)
      all.ann, <n>.ann the whole catalog, and one forest per category number n

Nothing is read into memory at load: the OS pages in the rows a query touches, so a 1M x 1280
catalog (5 GB as float32, 2.5 GB as float16) costs the app what its queries use, not the file size.
Annoy forests cannot change once built, so `add` / `delete` edit the rows in memory and `persist`
rebuilds the forests (seeded: the same rows give the same files) and measures how hard to search them.
A store of 0 trees has no forest and is searched exactly: for an index read by id or scanned whole (the
people index), where a forest and its tuning would be most of an update's time and never used.

The manifest entry records each file's size (`file_sizes`), checked at `open`: Annoy loads a forest cut short at a
node boundary without complaint and then reads past its nodes, so a truncated file must be caught before.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from lookalike.vectors.ann_tuning import RECALL_K, tune_search_k
from lookalike.vectors.neighbours import METRIC, annoy_top_k, build_annoy
from lookalike.vectors.stores.base import EXPORT_CHUNK, Found, StoreError, VectorStore, check_batch

FOLDER = "annoy"
DTYPES = ("float32", "float16")
OVERFETCH = 4
MIN_CANDIDATES = 100


def candidate_count(top_k: int) -> int:
    """How many candidates Annoy proposes for a top_k search (re-scored exactly afterwards)."""
    return max(OVERFETCH * top_k, MIN_CANDIDATES)


def _forest(folder: Path, number: int | None) -> Path:
    return folder / ("all.ann" if number is None else f"{number}.ann")


class AnnoyStore(VectorStore):
    kind = "annoy"

    def __init__(self, folder: Path, dim: int, trees: int, dtype: str = "float32") -> None:
        """An empty store to be written into `folder` (use `open` for an existing one)."""
        if dtype not in DTYPES:
            raise StoreError(f"annoy vectors are stored as one of {', '.join(DTYPES)}, not {dtype!r}")
        self.folder, self.dim, self.trees, self.dtype = Path(folder), dim, trees, dtype
        self._ids = np.zeros(0, np.int64)
        self._vectors = np.zeros((0, dim), np.float32)
        self._codes = np.zeros(0, np.int32)
        self._names: list[str] = []
        self._forests: dict[int | None, AnnoyIndex] = {}
        self._effort = trees
        self._stale = True  # rows changed since the last persist (or never persisted): not searchable

    @classmethod
    def open(cls, folder: Path, entry: dict) -> AnnoyStore:
        """The store a build persisted (its manifest `entry`), memory-mapped and read-only until changed."""
        store = cls(folder, entry["dim"], entry["trees"], entry.get("dtype", "float32"))
        sizes = entry.get("file_sizes", {})
        for name, size in sorted(sizes.items(), key=lambda item: not item[0].endswith(".npy")):  # arrays first
            try:
                found = (folder / name).stat().st_size
            except OSError:
                found = None
            if found != size:
                state = "missing" if found is None else f"{found} bytes where the build wrote {size}"
                raise StoreError(f"annoy store at {folder} is damaged or incomplete: {name} is {state}")
        arrays = {}
        for name in ("ids", "vectors", "categories"):
            try:
                arrays[name] = np.load(folder / f"{name}.npy", mmap_mode="r")
            except (OSError, ValueError, EOFError) as exc:
                raise StoreError(f"annoy store at {folder} is damaged or incomplete: {name}.npy ({exc})") from None
        store._ids, store._vectors, store._codes = arrays["ids"], arrays["vectors"], arrays["categories"]
        store._names = list(entry["categories"])
        store._effort = entry.get("search_k_per_candidate", store.trees)
        store._stale = False
        count = entry.get("items")
        if store._vectors.shape != (count, store.dim) or len(store._ids) != count or len(store._codes) != count:
            raise StoreError(
                f"annoy store at {folder} is inconsistent: its manifest says {count} x {store.dim}, the files hold "
                f"{store._vectors.shape} vectors, {len(store._ids)} ids and {len(store._codes)} categories"
            )
        for number in [None, *range(len(store._names))] if store.trees else []:
            forest = AnnoyIndex(store.dim, METRIC)
            try:
                forest.load(str(_forest(folder, number)), prefault=False)
            except OSError as exc:
                name = _forest(folder, number).name
                raise StoreError(f"annoy store at {folder}: cannot load {name} ({exc})") from None
            store._forests[number] = forest
        if store.trees and store._forests[None].get_n_items() != count:
            raise StoreError(f"annoy store at {folder}: all.ann holds {store._forests[None].get_n_items()} of {count}")
        return store

    def _code(self, category: str) -> int:
        if category not in self._names:
            self._names.append(category)
        return self._names.index(category)

    def add(self, ids: Sequence[int], vectors: np.ndarray, categories: Sequence[str]) -> None:
        vectors = check_batch(ids, vectors, categories, self.dim)
        ids = np.asarray(ids, np.int64)
        if np.intersect1d(ids, self._ids).size or len(np.unique(ids)) != len(ids):
            raise StoreError("add was given ids the store already holds (or the same id twice); use upsert")
        codes = np.asarray([self._code(c) for c in categories], np.int32)
        order = np.argsort(np.concatenate([self._ids, ids]), kind="stable")
        self._ids = np.concatenate([self._ids, ids])[order]
        self._vectors = np.concatenate([np.asarray(self._vectors, np.float32), vectors])[order]
        self._codes = np.concatenate([self._codes, codes])[order]
        self._forests, self._stale = {}, True  # until persist

    def delete(self, ids: Sequence[int]) -> None:
        keep = ~np.isin(self._ids, np.asarray(ids, np.int64))
        self._ids, self._vectors, self._codes = self._ids[keep], np.asarray(self._vectors)[keep], self._codes[keep]
        self._forests, self._stale = {}, True

    def _rows(self, ids: Sequence[int]) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        rows = np.searchsorted(self._ids, ids)
        clipped = np.minimum(rows, max(len(self._ids) - 1, 0))
        missing = ids[(rows >= len(self._ids)) | (np.asarray(self._ids)[clipped] != ids)] if len(self._ids) else ids
        if missing.size:
            raise StoreError(f"the store holds no item {int(missing[0])}")
        return rows

    def search(self, vector: np.ndarray, k: int, category: str | None = None) -> Found:
        if self._stale:
            raise StoreError("the annoy store changed since it was persisted: call persist() before searching")
        if category is not None and category not in self._names:
            return Found(np.zeros(0, np.int64), np.zeros(0, np.float32), [])
        number = None if category is None else self._names.index(category)
        if self.trees:
            wanted = candidate_count(k)
            rows, cosines = annoy_top_k(self._forests[number], self._vectors, vector, k, wanted, wanted * self._effort)
        else:
            rows, cosines = self._exact(vector, k, number)
        return Found(np.asarray(self._ids[rows]), cosines, [self._names[c] for c in self._codes[rows]])

    def _exact(self, vector: np.ndarray, k: int, number: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosines) of the k nearest rows (of category `number`), scanned in chunks."""
        rows = np.arange(len(self._ids)) if number is None else np.flatnonzero(np.asarray(self._codes) == number)
        cosines = np.empty(len(rows), np.float32)
        for start in range(0, len(rows), EXPORT_CHUNK):
            chunk = rows[start : start + EXPORT_CHUNK]
            cosines[start : start + len(chunk)] = np.asarray(self._vectors[chunk], np.float32) @ vector
        order = np.argsort(-cosines, kind="stable")[:k]
        return rows[order], cosines[order]

    def count(self) -> int:
        return len(self._ids)

    def vectors(self, ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(len(self._ids)) if ids is None else self._rows(ids)
        out = np.empty((len(rows), self.dim), np.float32)
        for start in range(0, len(rows), EXPORT_CHUNK):  # float16 rows widen a chunk at a time
            out[start : start + EXPORT_CHUNK] = self._vectors[rows[start : start + EXPORT_CHUNK]]
        return np.asarray(self._ids[rows]), out

    def persist(self) -> dict:
        self.folder.mkdir(parents=True, exist_ok=True)
        vectors = np.asarray(self._vectors, np.float32)
        np.save(self.folder / "ids.npy", np.asarray(self._ids))
        np.save(self.folder / "vectors.npy", vectors.astype(self.dtype))
        np.save(self.folder / "categories.npy", np.asarray(self._codes))
        rows = np.arange(len(vectors))
        for number in [None, *range(len(self._names))] if self.trees else []:
            build_annoy(vectors, rows if number is None else rows[self._codes == number], self.trees,
                        _forest(self.folder, number))
        tuning = tune_search_k(vectors, self.trees, candidate_count(RECALL_K)) if self.trees else {}
        entry = {"kind": self.kind, "uri": None, "dim": self.dim,  # the store lives in the index folder
                 "items": len(rows), "trees": self.trees, "dtype": self.dtype,
                 "categories": list(self._names), **tuning,
                 "file_sizes": {path.name: path.stat().st_size for path in sorted(self.folder.iterdir())}}
        self.close()
        reopened = AnnoyStore.open(self.folder, entry)
        self.__dict__.update(reopened.__dict__)
        return entry

    def discard(self) -> None:
        """Nothing outside the index folder: the store goes with it."""

    def close(self) -> None:
        for forest in self._forests.values():
            forest.unload()
        self._forests, self._stale = {}, True
