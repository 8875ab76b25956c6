"""A gallery of named faces, searched for the people nearest a query face: the 1:N vocabulary (`GalleryFace`,
`GalleryMatch`, `IdentifiedFace`, `IdentifyResult`), distances in the model's own metric, the open-set
decision, and `Gallery`, the base both galleries share.

photo -> detect every face -> align -> embed -> nearest gallery faces -> people ranked by their closest
face -> the first person if within the model's threshold, else "unknown". The same `Gallery.identify`
serves the on-disk index (`gallery_index.FaceGallery`, approximate search through a vector store) and a
session's in-memory gallery (`memory_gallery.MemoryGallery`, exact search), so a caller never cares which;
`identify.identify` is the one call against an index folder.

Galleries keep unit vectors (what the vector stores search by cosine) and each face's norm, so the
distance in the model's own metric is exact for either metric: cosine distance is 1 - cosine, and the
Euclidean distance of the raw vectors is sqrt(|q|^2 + |g|^2 - 2 |q| |g| cosine).
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from lookalike.faces.process_pool import EmbedJob, ParallelFacePipeline
from lookalike.images.loading import ImageSource, load_image
from lookalike.instances import Instances
from model_zoo.face_embedders import Weights, get_face_cfg

__all__ = [
    "DEFAULT_TOP_K",
    "UNKNOWN",
    "Gallery",
    "GalleryFace",
    "GalleryMatch",
    "IdentifiedFace",
    "IdentifyResult",
    "decide",
    "model_distances",
    "open_set_threshold",
]

UNKNOWN = "unknown"
DEFAULT_TOP_K = 5
#: Gallery faces fetched per person asked for: people with several gallery photos fill several slots.
FACES_PER_PERSON = 8
MIN_FACES_FETCHED = 50


@dataclass(frozen=True)
class GalleryFace:
    """One named face of a gallery: who, which photo, where in it, and its raw vector's norm."""

    person: str
    photo: str
    box: tuple[float, float, float, float]
    norm: float
    aligned: Image.Image | None = field(default=None, compare=False, repr=False)  # in-memory galleries only


@dataclass
class GalleryMatch:
    """A gallery person and their face closest to the query face."""

    person: str
    distance: float  # in the model's metric, as its threshold reads it
    similarity: float  # cosine similarity of the two embeddings
    photo: str  # the gallery photo of that closest face
    box: list[float]
    aligned: Image.Image | None = field(default=None, repr=False)  # the gallery face, for in-memory galleries

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if key != "aligned"}


@dataclass
class IdentifiedFace:
    """One face of the photo, its gallery people nearest first, and the decision: the first person when
    within the threshold (`known`), else "unknown"."""

    box: list[float]
    confidence: float
    detector: str
    decision: str
    known: bool
    matches: list[GalleryMatch]
    aligned: Image.Image = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": self.box,
            "confidence": self.confidence,
            "detector": self.detector,
            "decision": self.decision,
            "known": self.known,
            "matches": [match.to_dict() for match in self.matches],
        }


@dataclass
class IdentifyResult:
    model: str
    metric: str
    threshold: float
    gallery_faces: int
    faces: list[IdentifiedFace]  # every face of the photo, largest first
    timings_ms: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (plain floats and lists; the crops are left out)."""
        return {
            "model": self.model,
            "metric": self.metric,
            "threshold": self.threshold,
            "gallery_faces": self.gallery_faces,
            "faces": [face.to_dict() for face in self.faces],
            "timings_ms": self.timings_ms,
        }


#: One in-process pipeline per (model, weights), shared by every gallery that is not handed its own.
_PIPELINES: Instances[tuple[str, str | None], ParallelFacePipeline] = Instances(
    lambda key: ParallelFacePipeline(key[0], key[1], processes=1)
)


def model_distances(cosines: np.ndarray, query_norm: float, norms: np.ndarray, metric: str) -> np.ndarray:
    """Distances in the model's metric from cosines between unit vectors and the raw vectors' norms."""
    if metric == "cosine":
        return np.maximum(1.0 - cosines, 0.0)
    if metric == "euclidean":
        squared = query_norm**2 + norms**2 - 2.0 * query_norm * norms * cosines
        return np.sqrt(np.maximum(squared, 0.0))
    raise ValueError(f"unknown metric {metric!r}; use 'euclidean' or 'cosine'")


def open_set_threshold(model: str) -> float | None:
    """The distance at or below which a 1:N search names a gallery person: the model's identification
    threshold, else (a model measured only for 1:1) its verification one."""
    cfg = get_face_cfg(model)
    return cfg.identify_threshold if cfg.identify_threshold is not None else cfg.threshold


def decide(matches: list[GalleryMatch], threshold: float) -> tuple[str, bool]:
    """(the first person, True) when their distance is within `threshold`, else ("unknown", False): open set."""
    if matches and matches[0].distance <= threshold:
        return matches[0].person, True
    return UNKNOWN, False


class Gallery(ABC):
    """Named faces of one face model, searched for the people nearest a query face.

    Subclasses hold the faces and answer `_nearest`; `matches` and `identify` are shared."""

    def __init__(
        self,
        model: str,
        metric: str,
        threshold: float | None,
        weights: Weights = None,
        pipeline: ParallelFacePipeline | None = None,
    ) -> None:
        self.model, self.metric, self.threshold = model, metric, threshold
        self.weights = None if weights is None else str(weights)
        self._pipeline = pipeline

    @property
    def pipeline(self) -> ParallelFacePipeline:
        """The detector and model, loaded on first use: evaluating stored vectors needs none."""
        if self._pipeline is None:
            self._pipeline = _PIPELINES.get((self.model, self.weights))
        return self._pipeline

    @pipeline.setter
    def pipeline(self, pipeline: ParallelFacePipeline) -> None:
        """Embed with these (a server's helper processes, already loaded with this gallery's model)."""
        self._pipeline = pipeline

    @abstractmethod
    def __len__(self) -> int:
        """Faces held."""

    @abstractmethod
    def _nearest(self, unit: np.ndarray, count: int, exact: bool) -> tuple[list[GalleryFace], np.ndarray]:
        """The `count` faces with the highest cosine to the unit vector `unit`, and those cosines."""

    def matches(self, vector: np.ndarray, top_k: int = DEFAULT_TOP_K, exact: bool = False) -> list[GalleryMatch]:
        """The `top_k` gallery people nearest the face embedding `vector`, each by their closest face;
        `exact` searches by brute force where the gallery would otherwise search approximately."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        vector = np.asarray(vector, np.float32).ravel()
        norm = float(np.linalg.norm(vector))
        count = min(len(self), max(FACES_PER_PERSON * top_k, MIN_FACES_FETCHED))
        if count == 0 or norm == 0.0:
            return []
        faces, cosines = self._nearest(vector / norm, count, exact)
        norms = np.asarray([face.norm for face in faces], np.float64)
        distance = model_distances(np.asarray(cosines, np.float64), norm, norms, self.metric)
        found: list[GalleryMatch] = []
        seen: set[str] = set()
        for i in np.argsort(distance, kind="stable"):
            face = faces[i]
            if face.person in seen:
                continue
            seen.add(face.person)
            found.append(
                GalleryMatch(face.person, round(float(distance[i]), 6), round(float(cosines[i]), 6), face.photo,
                             [round(v, 1) for v in face.box], face.aligned)
            )
            if len(found) == top_k:
                break
        return found

    def identify(
        self, photo: ImageSource, top_k: int = DEFAULT_TOP_K, threshold: float | None = None
    ) -> IdentifyResult:
        """Every face of `photo` with its `top_k` gallery people and a decision (see `lookalike.identify`)."""
        threshold = self.threshold if threshold is None else float(threshold)
        if threshold is None:
            raise ValueError(
                f"model {self.model} has no calibrated threshold: pass one "
                f"(measure it with `lookalike eval-faces FACES_DIR --model {self.model}`)"
            )
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        start = time.perf_counter()
        name = f"the photo ({os.fspath(photo)})" if isinstance(photo, (str, os.PathLike)) else "the photo"
        image = load_image(photo, name=name)
        loaded = time.perf_counter()
        (embedded,) = self.pipeline.run([EmbedJob(image, name, every_face=True)])
        embedded_at = time.perf_counter()
        faces = []
        for i, detection in enumerate(embedded.detections):
            vector, aligned = embedded.embedded[i]
            matches = self.matches(vector, top_k)
            decision, known = decide(matches, threshold)
            faces.append(
                IdentifiedFace(
                    box=[round(v, 1) for v in detection.box],
                    confidence=round(detection.confidence, 4),
                    detector=detection.detector,
                    decision=decision,
                    known=known,
                    matches=matches,
                    aligned=aligned,
                )
            )
        done = time.perf_counter()
        timings = {"load": 1000 * (loaded - start), **embedded.timings_ms, "search": 1000 * (done - embedded_at),
                   "total": 1000 * (done - start)}
        return IdentifyResult(
            model=self.model,
            metric=self.metric,
            threshold=threshold,
            gallery_faces=len(self),
            faces=faces,
            timings_ms={k: round(v, 2) for k, v in timings.items()},
        )
