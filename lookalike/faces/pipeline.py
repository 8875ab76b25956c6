"""One photo -> one face embedding: detect, pick a face, align it for the model, embed it.

Everything a process needs to turn photos into vectors lives in one `FacePipeline`, so the same
object serves a verify call, a worker process and the evaluation, and they cannot drift apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from model_zoo.face_alignment import ARCFACE_POINTS
from model_zoo.face_detection import Detection, FaceDetector, centre_box
from model_zoo.face_embedders import DEFAULT_FACE_MODEL, FaceModel, Weights, create_face_model

#: Bump when detection, the choice of face or alignment change what a photo embeds to: the evaluation's
#: embedding cache is keyed by it, so a changed pipeline never scores stale vectors.
PIPELINE_VERSION = 3


class NoFaceError(ValueError):
    """No face was found in an image; the message names the image."""


@dataclass
class FaceEmbedding:
    """The chosen face's embedding and crop, with what the detector saw and how long each step took.

    `embedded` maps a detection's number to its (embedding, crop): the chosen face only, or with
    `every_face` all of them, so a caller can pick another face (`choose`) without embedding again."""

    index: int
    detections: list[Detection]
    embedded: dict[int, tuple[np.ndarray, Image.Image]]
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def face(self) -> Detection:
        return self.detections[self.index]

    @property
    def embedding(self) -> np.ndarray:
        return self.embedded[self.index][0]

    @property
    def aligned(self) -> Image.Image:
        return self.embedded[self.index][1]

    def choose(self, index: int) -> FaceEmbedding:
        if index not in self.embedded:
            raise ValueError(f"face {index} was not embedded")
        return FaceEmbedding(index, self.detections, self.embedded, self.timings_ms)


class FacePipeline:
    """Detector + model loaded once; thread-safe (each stage guards its own non-reentrant parts)."""

    def __init__(self, model: str = DEFAULT_FACE_MODEL, weights: Weights = None) -> None:
        self.model: FaceModel = create_face_model(model, weights)
        self.detector = FaceDetector()

    def embed(
        self,
        image: Image.Image,
        name: str = "the image",
        face_index: int | None = None,
        centred: bool = False,
        every_face: bool = False,
    ) -> FaceEmbedding:
        """Embed the largest face of `image` (or face number `face_index`, largest first).

        `centred` says the photo is a crop centred on the face that matters (LFW): the face nearest
        the centre is taken rather than the largest (a bystander may be bigger), and a centred box
        stands in when no detector finds a face. Wrong for arbitrary photos, so off by default.
        `every_face` embeds every face found (a group photo compared face by face).
        """
        start = time.perf_counter()
        detections = self.detector.detect(image)
        detected = time.perf_counter()
        if not detections:
            if not centred:
                raise NoFaceError(f"no face found in {name}")
            detections = [Detection(centre_box(*image.size), 0.0, None, "centre")]
        index = face_index if face_index is not None else _default_face(detections, image, centred)
        if not 0 <= index < len(detections):
            raise ValueError(f"face index {index} is out of range: {len(detections)} face(s) found in {name}")
        pixels = np.asarray(image)
        wanted = range(len(detections)) if every_face else [index]
        embedded = {i: self.model.embed_face(pixels, detections[i]) for i in wanted}
        done = time.perf_counter()
        timings = {"detect": 1000 * (detected - start), "align_embed": 1000 * (done - detected)}
        return FaceEmbedding(index, detections, embedded, timings)

    def warm_up(self) -> None:
        """Run each stage once on a blank image, so the first real request pays no start-up cost.

        The face is given landmarks, as MTCNN gives them, so the common path runs: one without them would
        also load dlib's landmark model, which only faces found without landmarks need."""
        blank = Image.new("RGB", (250, 250), (128, 128, 128))
        self.detector.detect(blank)
        box = centre_box(250, 250)
        scale = (box[2] - box[0]) / 112
        landmarks = tuple((box[0] + x * scale, box[1] + y * scale) for x, y in ARCFACE_POINTS)
        self.model.embed_face(np.asarray(blank), Detection(box, 0.0, landmarks, "warm-up"))


def _default_face(detections: list[Detection], image: Image.Image, centred: bool) -> int:
    """The largest face (detections come largest first), or for a centred crop the nearest the centre."""
    if not centred:
        return 0
    cx, cy = image.width / 2, image.height / 2
    offsets = [
        ((d.box[0] + d.box[2]) / 2 - cx) ** 2 + ((d.box[1] + d.box[3]) / 2 - cy) ** 2 for d in detections
    ]
    return int(np.argmin(offsets))
