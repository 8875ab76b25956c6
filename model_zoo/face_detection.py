"""Find faces in a photo: MTCNN (boxes, confidences, 5 landmarks), with dlib's HOG detector behind it.

MTCNN is the better detector on hard poses; when it finds nothing, dlib's HOG detector gets a
second look (it catches some frontal faces MTCNN's cascade rejects). Photos are scaled down for
detection only, so a 12-megapixel upload costs what a 1-megapixel one does, and coordinates are
returned in the original image's pixels.

MTCNN's three networks run in onnxruntime when they can be exported (once, then cached, checked against
torch on a probe): faster than torch on one core, with the same boxes (`bench/face_verify_latency.py`;
docs/experiments/inference-runtimes.md; `model_zoo.mtcnn_onnx`). They run on one thread each: on two, a photo
was slower. Where the export fails, torch runs them as before. torch is imported with the detector, not with
this module: `Detection` is what every face module shares.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

#: Longest side a photo is scaled down to before detection.
DETECT_MAX_SIDE = 1024

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One face: `box` is (x1, y1, x2, y2) in image pixels; `confidence` is MTCNN's probability (HOG's
    SVM score for its finds); `landmarks` are MTCNN's 5 points (eyes, nose, mouth corners), or None
    when another detector found the face or MTCNN put a point outside the photo (a face cut by the
    border: aligning on such guesses gave a mostly black crop, so aligners place the face themselves)."""

    box: Box
    confidence: float
    landmarks: tuple[tuple[float, float], ...] | None
    detector: str

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


def centre_box(width: int, height: int, fraction: float = 0.45) -> Box:
    """A square box on the image centre: where pre-aligned photos (LFW's 250x250) put the face."""
    side = fraction * min(width, height)
    cx, cy = width / 2, height / 2
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


class FaceDetector:
    """MTCNN from facenet-pytorch 2.5.3 with dlib's HOG detector as fallback; faces largest first.
    `backend`: "auto" runs MTCNN's networks in onnxruntime where they export, "torch" keeps torch."""

    def __init__(self, min_face_size: int = 20, hog_fallback: bool = True, backend: str = "auto") -> None:
        from facenet_pytorch import MTCNN  # weights ship inside the package

        from model_zoo.mtcnn_onnx import onnx_stages

        if backend not in ("auto", "torch"):
            raise ValueError(f"backend must be 'auto' or 'torch', got {backend!r}")
        self._mtcnn = MTCNN(min_face_size=min_face_size, keep_all=True, device="cpu").eval()
        if backend == "auto":
            onnx_stages(self._mtcnn)
        self._hog = None
        self._hog_lock = threading.Lock()  # dlib's scanner keeps per-call buffers
        if hog_fallback:
            import dlib

            self._hog = dlib.get_frontal_face_detector()

    def detect(self, image: Image.Image) -> list[Detection]:
        scale = min(1.0, DETECT_MAX_SIDE / max(image.size))
        small = (
            image
            if scale == 1.0
            else image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
        )
        pixels = np.asarray(small)
        faces = self._mtcnn_faces(pixels) or self._hog_faces(pixels)
        if scale != 1.0:
            faces = [_rescale(face, 1.0 / scale) for face in faces]
        faces = [_inside(face, image.width, image.height) for face in faces]
        return sorted(faces, key=lambda face: face.area, reverse=True)

    def _mtcnn_faces(self, pixels: np.ndarray) -> list[Detection]:
        import torch

        with torch.inference_mode():
            boxes, probs, points = self._mtcnn.detect(pixels, landmarks=True)
        if boxes is None:
            return []
        return [
            Detection(
                tuple(float(v) for v in box),
                float(prob),
                tuple((float(x), float(y)) for x, y in point),
                "mtcnn",
            )
            for box, prob, point in zip(boxes, probs, points, strict=True)
        ]

    def _hog_faces(self, pixels: np.ndarray) -> list[Detection]:
        if self._hog is None:
            return []
        with self._hog_lock:
            rects, scores, _ = self._hog.run(pixels, 1, 0.0)
        return [
            Detection(
                (float(r.left()), float(r.top()), float(r.right()), float(r.bottom())), float(s), None, "hog"
            )
            for r, s in zip(rects, scores, strict=True)
        ]


def _rescale(face: Detection, factor: float) -> Detection:
    box = tuple(v * factor for v in face.box)
    points = None if face.landmarks is None else tuple((x * factor, y * factor) for x, y in face.landmarks)
    return Detection(box, face.confidence, points, face.detector)


def _inside(face: Detection, width: int, height: int) -> Detection:
    """The box clipped to the photo; landmarks dropped when any falls outside it."""
    x1, y1, x2, y2 = face.box
    box = (min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height))
    points = face.landmarks
    if points is not None and not all(0 <= x < width and 0 <= y < height for x, y in points):
        points = None
    return Detection(box, face.confidence, points, face.detector)
