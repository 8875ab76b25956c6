"""A small gallery kept in memory only: a visitor names a few photos, then asks who is in another one.

Nothing is written to disk (the vectors and face crops live in this object, and go when it does), and the
gallery is capped, so a server can hold one per browser session. At that size exact search costs
microseconds, so it answers the same `identify` as the on-disk index without a vector store.
"""

from __future__ import annotations

import threading

import numpy as np

from lookalike.faces.gallery import Gallery, GalleryFace, open_set_threshold
from lookalike.faces.process_pool import EmbedJob, ParallelFacePipeline
from lookalike.images.loading import ImageSource, load_image
from lookalike.vectors.neighbours import nearest
from model_zoo.face_embedders import DEFAULT_FACE_MODEL, Weights, get_face_cfg

__all__ = ["GalleryFullError", "MemoryGallery"]

DEFAULT_MAX_FACES = 20
MAX_NAME_LENGTH = 100


class GalleryFullError(ValueError):
    """The gallery holds its maximum number of faces; remove one first."""


class MemoryGallery(Gallery):
    """Named faces held in this process only, at most `max_faces`; thread-safe.

    `pipeline`: the detector and model to embed with (a server shares its own between sessions, so a
    session costs no model load); default: one in-process pipeline per model, shared.

    Example:
        >>> gallery = MemoryGallery(max_faces=10)
        >>> gallery.add("alice.jpg", "Alice").person
        'Alice'
        >>> gallery.identify("group.jpg").faces[0].decision
        'Alice'
    """

    def __init__(
        self,
        model: str = DEFAULT_FACE_MODEL,
        weights: Weights = None,
        max_faces: int = DEFAULT_MAX_FACES,
        pipeline: ParallelFacePipeline | None = None,
    ) -> None:
        cfg = get_face_cfg(model)
        super().__init__(model, cfg.metric, open_set_threshold(model), weights, pipeline)
        self.max_faces = max_faces
        self._faces: list[GalleryFace] = []
        self._units = np.zeros((0, cfg.dim), np.float32)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._faces)

    @property
    def faces(self) -> list[GalleryFace]:
        """The faces held, in the order they were added (each with its aligned crop)."""
        return list(self._faces)

    def add(
        self, photo: ImageSource, person: str, name: str | None = None, face_index: int | None = None
    ) -> GalleryFace:
        """Name the largest face of `photo` (or face `face_index`, largest first) as `person`; `name` is how
        matches cite the photo (default: "<person> #<n>").

        Raises:
            GalleryFullError: the gallery already holds `max_faces` faces.
            ValueError: an empty or over-long person name, or a face index out of range.
            ImageError, NoFaceError: the photo cannot be read, or holds no face.
        """
        person = person.strip()
        if not person or len(person) > MAX_NAME_LENGTH:
            raise ValueError(f"a person's name must be 1 to {MAX_NAME_LENGTH} characters")
        if len(self) >= self.max_faces:
            raise GalleryFullError(f"the gallery holds its maximum of {self.max_faces} faces: remove one first")
        image = load_image(photo, name=f"the photo of {person}")
        (embedded,) = self.pipeline.run([EmbedJob(image, f"the photo of {person}", face_index)])
        vector = embedded.embedding.astype(np.float32)
        norm = float(np.linalg.norm(vector))
        with self._lock:
            if len(self) >= self.max_faces:  # another thread filled it while this photo was embedded
                raise GalleryFullError(f"the gallery holds its maximum of {self.max_faces} faces: remove one first")
            label = name or f"{person} #{sum(face.person == person for face in self._faces) + 1}"
            face = GalleryFace(person, label, tuple(embedded.face.box), norm, embedded.aligned)
            self._faces.append(face)
            self._units = np.vstack([self._units, vector[None, :] / norm])
        return face

    def remove(self, person: str) -> int:
        """Forget every face of `person`; returns how many there were."""
        with self._lock:
            keep = [face.person != person for face in self._faces]
            self._faces = [face for face, kept in zip(self._faces, keep, strict=True) if kept]
            self._units = self._units[np.asarray(keep, bool)] if keep else self._units
            return len(keep) - sum(keep)

    def clear(self) -> None:
        with self._lock:
            self._faces = []
            self._units = self._units[:0]

    def _nearest(self, unit: np.ndarray, count: int, exact: bool) -> tuple[list[GalleryFace], np.ndarray]:
        with self._lock:
            faces, units = list(self._faces), self._units
        if not faces:
            return [], np.zeros(0, np.float32)
        cosines, rows = nearest(units, unit[None, :], min(count, len(faces)))
        return [faces[r] for r in rows[0]], cosines[0]
