"""A face gallery index on disk: its format, how it is written, and `FaceGallery`, which loads and searches it.

    FACE_INDEX/
      manifest.json    `GalleryManifest` (`gallery_manifest`): format, face model (name, weights, metric, dim),
                       the vector store's entry and the build report (photos without a face, ...); written last
      faces.json       one row per indexed face: id, person, photo path and sha256, box, raw vector norm, ...
      annoy/ | milvus/ the vector store (`lookalike.vectors.stores`, as the product index): unit vectors by id

Every face goes in under one store category, so Annoy builds one forest and Milvus searches unfiltered.
The folder is built beside the old one and swapped in (`lookalike.vectors.index_writer`), so a reader
never sees half an index.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lookalike.faces.gallery import Gallery, GalleryFace, open_set_threshold
from lookalike.faces.gallery_manifest import FORMAT, MANIFEST, GalleryError, GalleryManifest
from lookalike.faces.process_pool import ParallelFacePipeline
from lookalike.vectors import index_folder
from lookalike.vectors.neighbours import nearest
from lookalike.vectors.stores import StoreError, VectorStore, open_store

__all__ = ["FORMAT", "MANIFEST", "FaceGallery", "GalleryError", "GalleryManifest", "write_faces"]

ROWS = "faces.json"
CATEGORY = "face"


def read_rows(folder: Path) -> list[dict]:
    try:
        return json.loads((folder / ROWS).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GalleryError(f"face gallery at {folder}: cannot read {ROWS} ({exc})") from None


def write_faces(folder: Path, rows: list[dict], vectors: np.ndarray, store: VectorStore) -> dict:
    """Write `rows` (each with its "id") and their raw `vectors` into `folder` and the new `store`, which is
    closed afterwards; returns the store's manifest entry. The caller writes the manifest last
    (`lookalike.vectors.index_writer.IndexWriter` does, and discards the store on failure)."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    if len(rows) != len(vectors) or np.any(norms == 0):
        raise ValueError(f"{len(rows)} rows and {len(vectors)} vectors do not line up, or a vector is zero")
    for row, norm in zip(rows, norms, strict=True):
        row["norm"] = float(norm)
    store.add([row["id"] for row in rows], vectors / norms[:, None], [CATEGORY] * len(rows))
    entry = store.persist()
    store.close()  # before the folder is renamed under an embedded Milvus Lite file
    (folder / ROWS).write_text(json.dumps(rows))
    return entry


class FaceGallery(Gallery):
    """A gallery index loaded for search: its rows in memory, its vectors in the store it was built with.

    Example:
        >>> gallery = FaceGallery.load("face_index")
        >>> gallery.identify("party.jpg", top_k=3).faces[0].decision
        'Colin_Powell'
    """

    def __init__(
        self, folder: Path, manifest: GalleryManifest, rows: list[dict], store: VectorStore,
        pipeline: ParallelFacePipeline | None = None,
    ) -> None:
        model = manifest.model
        super().__init__(model, manifest.metric, open_set_threshold(model), manifest.weights, pipeline)
        self.folder, self.manifest, self.rows, self.store = folder, manifest, rows, store
        self._faces = {
            row["id"]: GalleryFace(row["person"], row["path"], tuple(row["box"]), row["norm"]) for row in rows
        }
        self._exact: tuple[np.ndarray, np.ndarray] | None = None  # (ids, unit vectors), read on first exact search

    @classmethod
    def load(cls, index_dir: str | Path, pipeline: ParallelFacePipeline | None = None) -> FaceGallery:
        """Open the gallery at `index_dir` (or its parked copy, should a swap have been interrupted); the face
        model loads on the first `identify`, in `pipeline` when one is given (a server's helper processes).

        Raises:
            FileNotFoundError: no gallery there.
            GalleryError: the folder is not a gallery, or its parts disagree.
        """
        try:
            folder = index_folder.locate(Path(index_dir), MANIFEST)
        except FileNotFoundError:
            raise FileNotFoundError(f"no face gallery at {index_dir} (build one: lookalike build-faces)") from None
        manifest = GalleryManifest.read(folder)
        rows = read_rows(folder)
        try:
            store = open_store(folder, manifest.store)
        except StoreError as exc:
            raise GalleryError(f"face gallery at {folder}: its vectors cannot be opened ({exc})") from None
        if store.count() != len(rows):
            store.close()
            raise GalleryError(f"face gallery at {folder}: {ROWS} lists {len(rows)} faces, the store {store.count()}")
        return cls(folder, manifest, rows, store, pipeline)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def people(self) -> set[str]:
        return {row["person"] for row in self.rows}

    def _nearest(self, unit: np.ndarray, count: int, exact: bool) -> tuple[list[GalleryFace], np.ndarray]:
        if not exact:
            found = self.store.search(unit, count)
            return [self._faces[int(i)] for i in found.ids], np.asarray(found.cosines)
        if self._exact is None:
            self._exact = self.store.vectors()
        ids, units = self._exact
        cosines, rows = nearest(units, unit[None, :], count)
        return [self._faces[int(ids[r])] for r in rows[0]], cosines[0]

    def close(self) -> None:
        self.store.close()
