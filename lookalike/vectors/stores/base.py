"""What search needs from a vector store, whichever engine holds the vectors.

Every store keeps unit vectors under stable integer item ids (the `id` of `catalog.sqlite`, which stays
the metadata store) with each item's category as a filterable field, and answers exact-scored
cosines: Annoy re-scores its candidates against the stored vectors, Milvus scores them itself.
A store is written by one build and then only read; `--update` writes a new store from the old
one's vectors plus the new photos' (`vectors`), so the index in use is never modified in place.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EXPORT_CHUNK = 10_000  # items per batch when a store's vectors are read out or written in


class StoreError(ValueError):
    """A store address that cannot be used, or a store that does not answer as its manifest says."""


@dataclass
class Found:
    """Nearest items, most similar first: ids, their cosines to the query and their categories."""

    ids: np.ndarray
    cosines: np.ndarray
    categories: list[str]

    def __len__(self) -> int:
        return len(self.ids)


class VectorStore(ABC):
    """Unit vectors by item id, each with a category; search optionally within one category."""

    kind: str

    @abstractmethod
    def add(self, ids: Sequence[int], vectors: np.ndarray, categories: Sequence[str]) -> None:
        """Insert new items (an id already present is an error; `upsert` replaces)."""

    @abstractmethod
    def delete(self, ids: Sequence[int]) -> None:
        """Remove items; ids not present are ignored."""

    def upsert(self, ids: Sequence[int], vectors: np.ndarray, categories: Sequence[str]) -> None:
        """Insert or replace items."""
        self.delete(ids)
        self.add(ids, vectors, categories)

    @abstractmethod
    def search(self, vector: np.ndarray, k: int, category: str | None = None) -> Found:
        """The k items nearest `vector` (within `category` when given), exact cosines."""

    @abstractmethod
    def count(self) -> int:
        """Items held."""

    @abstractmethod
    def vectors(self, ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, float32 vectors) of the given items, or of every item in id order: what an update
        carries over without embedding again, and what the category head is refitted on."""

    @abstractmethod
    def persist(self) -> dict:
        """Make every change durable; returns the manifest entry that `open_store` reopens it from."""

    @abstractmethod
    def close(self) -> None:
        """Release files and connections (a store is unusable afterwards)."""

    @abstractmethod
    def discard(self) -> None:
        """Delete what this store wrote outside the index folder (a failed build's leftovers, or the
        previous index's vectors once a new build is in place)."""


def check_batch(ids: Sequence[int], vectors: np.ndarray, categories: Sequence[str], dim: int) -> np.ndarray:
    """The vectors as float32 [n, dim], after checking that the three inputs line up."""
    if not len(ids):
        return np.zeros((0, dim), np.float32)
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)
    if vectors.shape != (len(ids), dim) or len(categories) != len(ids):
        raise StoreError(
            f"{len(ids)} ids, {len(categories)} categories and vectors of shape {vectors.shape} do not line up "
            f"(dim {dim})"
        )
    return vectors
