"""Are two photos of the same person? One call (`verify`) or a loaded, reusable `FaceVerifier`.

photo -> detect -> pick a face -> align -> embed -> distance -> compare with the model's threshold.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from lookalike.face_parallel import EmbedJob, ParallelFacePipeline
from lookalike.face_pipeline import FaceEmbedding, NoFaceError
from lookalike.imageio import ImageSource, load_image
from model_zoo.face_embedders import DEFAULT_FACE_MODEL, Weights, distances

__all__ = ["FaceInfo", "FaceVerifier", "NoFaceError", "VerifyResult", "verify"]

ORDINALS = ("first", "second")


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (plain floats and lists; the aligned crops are left out)."""
        return {
            "model": self.model,
            "distance": self.distance,
            "threshold": self.threshold,
            "same_person": self.same_person,
            "faces": [face.to_dict() for face in self.faces],
            "timings_ms": self.timings_ms,
        }


def _name(source: ImageSource, position: int) -> str:
    if isinstance(source, str) or hasattr(source, "__fspath__"):
        return f"the {ORDINALS[position]} image ({source})"
    return f"the {ORDINALS[position]} image"


class FaceVerifier:
    """Detector and model loaded once; `verify` may be called from many threads at once."""

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
    ) -> VerifyResult:
        """Compare the largest face of each photo (or faces `face_index[0]`, `face_index[1]`)."""
        threshold = self.threshold if threshold is None else float(threshold)
        if threshold is None:
            raise ValueError(
                f"model {self.model} has no calibrated threshold: pass one "
                f"(measure it with `python -m lookalike eval-faces FACES_DIR --model {self.model}`)"
            )
        start = time.perf_counter()
        indices = face_index or (None, None)
        jobs = [
            EmbedJob(load_image(source), _name(source, i), indices[i])
            for i, source in enumerate((image1, image2))
        ]
        loaded = time.perf_counter()
        first, second = self._pipeline.run(jobs)
        distance = float(distances(first.embedding, second.embedding, self.metric)[0])
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
        )

    def warm_up(self) -> None:
        self._pipeline.warm_up()

    def close(self) -> None:
        self._pipeline.close()


_VERIFIERS: dict[str, FaceVerifier] = {}
_VERIFIERS_LOCK = threading.Lock()


def verify(
    image1: ImageSource,
    image2: ImageSource,
    model: str = DEFAULT_FACE_MODEL,
    threshold: float | None = None,
    face_index: tuple[int | None, int | None] | None = None,
) -> VerifyResult:
    """One call, deepface-style; the verifier for `model` is built on first use and kept (in this
    process only: a server that wants both cores keeps its own `FaceVerifier`)."""
    with _VERIFIERS_LOCK:
        if model not in _VERIFIERS:
            _VERIFIERS[model] = FaceVerifier(model, processes=1)
        verifier = _VERIFIERS[model]
    return verifier.verify(image1, image2, threshold=threshold, face_index=face_index)
