"""Are two photos of the same person? One call (`verify`) or a loaded, reusable `FaceVerifier`.

photo -> detect -> pick a face -> align -> embed -> distance -> compare with the model's threshold.
The face compared in each photo is its largest, a chosen one (`face_index`), or with `faces="all"`
the closest pair across every face of both photos (a group photo against a portrait).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

from lookalike.faces.pipeline import FaceEmbedding, NoFaceError
from lookalike.faces.process_pool import EmbedJob, ParallelFacePipeline
from lookalike.images.loading import ImageSource, load_image
from lookalike.instances import Instances
from model_zoo.face_embedders import DEFAULT_FACE_MODEL, Weights, distances

__all__ = ["FaceInfo", "FaceVerifier", "NoFaceError", "VerifyResult", "verify"]

ORDINALS = ("first", "second")
FaceChoice = Literal["largest", "all"]


@dataclass
class FaceInfo:
    """The face compared in one photo (`box`, `index`, largest first) and every face found there."""

    box: list[float]
    confidence: float
    count: int
    index: int
    all_boxes: list[list[float]]
    landmarks: list[list[float]] | None
    detector: str
    aligned: Image.Image = field(repr=False)

    @classmethod
    def from_embedding(cls, result: FaceEmbedding) -> FaceInfo:
        face = result.face
        return cls(
            box=[round(v, 1) for v in face.box],
            confidence=round(face.confidence, 4),
            count=len(result.detections),
            index=result.index,
            all_boxes=[[round(v, 1) for v in d.box] for d in result.detections],
            landmarks=None
            if face.landmarks is None
            else [[round(x, 1), round(y, 1)] for x, y in face.landmarks],
            detector=face.detector,
            aligned=result.aligned,
        )

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if key != "aligned"}


@dataclass
class VerifyResult:
    model: str
    distance: float
    threshold: float
    same_person: bool
    faces: list[FaceInfo]
    timings_ms: dict[str, float]
    pairs_compared: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (plain floats and lists; the aligned crops are left out)."""
        return {
            "model": self.model,
            "distance": self.distance,
            "threshold": self.threshold,
            "same_person": self.same_person,
            "faces": [face.to_dict() for face in self.faces],
            "pairs_compared": self.pairs_compared,
            "timings_ms": self.timings_ms,
        }


def _name(source: ImageSource, position: int) -> str:
    if isinstance(source, str) or hasattr(source, "__fspath__"):
        return f"the {ORDINALS[position]} image ({source})"
    return f"the {ORDINALS[position]} image"


class FaceVerifier:
    """Detector and model loaded once; `verify` may be called from many threads at once.

    With `processes` > 1 (default: one per core) the two photos are embedded in helper processes,
    side by side; `close` (or the end of the process) stops them.

    Example:
        >>> verifier = FaceVerifier("arcface_mobilefacenet")
        >>> result = verifier.verify("a.jpg", "b.jpg", faces="all")
        >>> result.same_person, result.faces[0].index
    """

    def __init__(
        self, model: str = DEFAULT_FACE_MODEL, weights: Weights = None, processes: int | None = None
    ) -> None:
        self._pipeline = ParallelFacePipeline(model, weights, processes)
        face_model = self._pipeline.local.model
        self.model, self.metric, self.threshold = face_model.name, face_model.metric, face_model.threshold

    def verify(
        self,
        image1: ImageSource,
        image2: ImageSource,
        threshold: float | None = None,
        face_index: tuple[int | None, int | None] | None = None,
        faces: FaceChoice = "largest",
    ) -> VerifyResult:
        """Compare the largest face of each photo (or faces `face_index[0]`, `face_index[1]`); with
        `faces="all"`, every face of one photo with every face of the other, reporting the closest pair."""
        if faces not in ("largest", "all"):
            raise ValueError(f"faces must be 'largest' or 'all', got {faces!r}")
        if faces == "all" and face_index is not None:
            raise ValueError("choose faces by face_index or compare them all (faces='all'), not both")
        threshold = self.threshold if threshold is None else float(threshold)
        if threshold is None:
            raise ValueError(
                f"model {self.model} has no calibrated threshold: pass one "
                f"(measure it with `lookalike eval-faces FACES_DIR --model {self.model}`)"
            )
        start = time.perf_counter()
        indices = face_index or (None, None)
        jobs = [
            EmbedJob(load_image(source), _name(source, i), indices[i], every_face=faces == "all")
            for i, source in enumerate((image1, image2))
        ]
        loaded = time.perf_counter()
        first, second = self._pipeline.run(jobs)
        first, second, distance, pairs = self._closest_pair(first, second)
        timings = {"load": 1000 * (loaded - start)}
        for stage in first.timings_ms:
            timings[stage] = first.timings_ms[stage] + second.timings_ms[stage]
        timings["total"] = 1000 * (time.perf_counter() - start)
        return VerifyResult(
            model=self.model,
            distance=round(distance, 6),
            threshold=threshold,
            same_person=distance <= threshold,
            faces=[FaceInfo.from_embedding(first), FaceInfo.from_embedding(second)],
            timings_ms={k: round(v, 2) for k, v in timings.items()},
            pairs_compared=pairs,
        )

    def _closest_pair(
        self, first: FaceEmbedding, second: FaceEmbedding
    ) -> tuple[FaceEmbedding, FaceEmbedding, float, int]:
        """Each photo's embedded face that makes the closest pair (the chosen ones when one each), their
        distance (never below 0: rounding must not print -0.0) and how many pairs were compared."""
        left, right = sorted(first.embedded), sorted(second.embedded)
        a = np.stack([first.embedded[i][0] for i in left])
        b = np.stack([second.embedded[j][0] for j in right])
        grid = distances(np.repeat(a, len(b), axis=0), np.tile(b, (len(a), 1)), self.metric)
        best = int(np.argmin(grid))
        distance = max(0.0, float(grid[best]))
        return first.choose(left[best // len(b)]), second.choose(right[best % len(b)]), distance, len(grid)

    @property
    def pipeline(self) -> ParallelFacePipeline:
        """The detector, model and helper processes, for a gallery that should embed with them too."""
        return self._pipeline

    def warm_up(self) -> None:
        self._pipeline.warm_up()

    def close(self) -> None:
        self._pipeline.close()


#: One in-process verifier per model (processes=1: the one-call API runs in the caller's process).
_VERIFIERS: Instances[str, FaceVerifier] = Instances(lambda model: FaceVerifier(model, processes=1))


def verify(
    image1: ImageSource,
    image2: ImageSource,
    model: str = DEFAULT_FACE_MODEL,
    threshold: float | None = None,
    face_index: tuple[int | None, int | None] | None = None,
    faces: FaceChoice = "largest",
) -> VerifyResult:
    """Are the people in two photos the same person? One call, deepface-style.

    The verifier for `model` is built on first use and kept, in this process only (a server that wants
    both cores keeps its own `FaceVerifier`, which runs faces in helper processes).

    Args:
        image1, image2: a path, PIL image, numpy array or bytes; any mode, EXIF rotation applied.
        model: a registered face model (`model_zoo.list_face_models()`); the default works offline.
        threshold: "same person" at or below this distance; default: the model's calibrated one.
        face_index: which face of each photo to compare (0 = largest); default: the largest.
        faces: "all" compares every face of one photo with every face of the other and keeps the
            closest pair (a group photo against a portrait).

    Returns:
        A `VerifyResult`: distance, threshold, `same_person`, the faces compared (box, landmarks,
        aligned crop, how many faces each photo holds) and per-stage timings.

    Raises:
        ImageError: a photo cannot be read (not an image, truncated, too large), named in the message.
        NoFaceError: no face was found in a photo.
        ValueError: a face index out of range, or a model without a calibrated threshold and none given.
        UnknownModelError, WeightsUnavailableError: the model is unknown or its weights are not here.

    Example:
        >>> import lookalike
        >>> result = lookalike.verify("alice_1.jpg", "alice_2.jpg")
        >>> result.same_person, round(result.distance, 3)
        (True, 0.285)
    """
    return _VERIFIERS.get(model).verify(image1, image2, threshold=threshold, face_index=face_index, faces=faces)
