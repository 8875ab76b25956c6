"""Cut a face out of a photo the way each embedder was trained to see it.

dlib's ResNet was trained on chips made by its own 5-point landmarks and `get_face_chip`; feeding it
anything else costs accuracy. Several views of one face (landmarks fitted in slightly different boxes,
chips cut with different margins) can be averaged by the model: test-time augmentation.
InsightFace's networks were trained on 112x112 crops that put five landmarks (eyes, nose tip, mouth
corners) on fixed points by a similarity transform; MTCNN gives those five points. Networks trained on
detector boxes (facenet, the seed model) get the box plus a margin, resized, as facenet-pytorch's
`extract_face` does. Every aligner takes the detector's `Detection` and uses what its model needs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from model_zoo.face_detection import Box, Detection
from model_zoo.weights import packaged_model_path

#: One view of a face for test-time augmentation: where dlib's landmarks are fitted ("detector": the
#: detector's box; "hog": dlib's own HOG detector box, the kind its landmark model was trained on), that
#: box's scale about its centre, and the chip's padding.
View = tuple[str, float, float]
#: Side, in pixels, that the region around a face is scaled to before dlib's HOG detector looks at it:
#: twice the face box, so the face is about 120 px, inside HOG's 80 px window at one pyramid level.
HOG_REGION = 240
HOG_MIN_IOU = 0.3


#: dlib's 5-point landmark model: (package, file), shipped in face_recognition_models.
LANDMARK_MODEL = ("face_recognition_models", "models/shape_predictor_5_face_landmarks.dat")


class DlibChipAligner:
    """dlib 5-point landmarks inside a box, then `dlib.get_face_chip` (rotation + scale), for each view."""

    def __init__(self, size: int = 150, padding: float = 0.25, views: Sequence[View] = ()) -> None:
        import dlib

        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(packaged_model_path(*LANDMARK_MODEL)))
        self._hog = dlib.get_frontal_face_detector() if any(v[0] == "hog" for v in views) else None
        self._lock = threading.Lock()
        self.size, self.padding = size, padding
        self._views = [tuple(v) for v in views] or [("detector", 1.0, padding)]

    def __call__(self, pixels: np.ndarray, face: Detection) -> Image.Image:
        """The canonical chip: landmarks in the detector's box, the model's padding."""
        return self.views(pixels, face, [("detector", 1.0, self.padding)])[0]

    def views(self, pixels: np.ndarray, face: Detection, views: Sequence[View] | None = None) -> list[Image.Image]:
        """A chip per view (the first is the canonical one); a HOG view is left out when HOG misses the face."""
        box = face.box
        shapes: dict[tuple[str, float], Any] = {}
        chips = []
        for source, scale, padding in views or self._views:
            if (source, scale) not in shapes:
                fit_box = self._hog_box(pixels, box) if source == "hog" else box
                shapes[source, scale] = None if fit_box is None else self._landmarks(pixels, _scaled(fit_box, scale))
            shape = shapes[source, scale]
            if shape is not None:
                chip = self._dlib.get_face_chip(pixels, shape, size=self.size, padding=padding)
                chips.append(Image.fromarray(chip))
        return chips

    def _landmarks(self, pixels: np.ndarray, box: Box) -> Any:
        with self._lock:
            return self._predictor(pixels, self._dlib.rectangle(*(round(v) for v in box)))

    def eye_centres(self, pixels: np.ndarray, box: Box) -> np.ndarray:
        """The two eye centres (image-left first) from dlib's 5 points, which mark each eye's corners."""
        shape = self._landmarks(pixels, box)
        corners = np.array([[shape.part(i).x, shape.part(i).y] for i in range(4)], dtype=np.float64)
        eyes = np.stack([corners[:2].mean(axis=0), corners[2:].mean(axis=0)])
        return eyes[np.argsort(eyes[:, 0])]

    def _hog_box(self, pixels: np.ndarray, box: Box) -> Box | None:
        """dlib's HOG box for the same face, searched in the region around `box` scaled to HOG_REGION px."""
        assert self._hog is not None, "a HOG view needs the HOG detector"
        height, width = pixels.shape[:2]
        side = max(box[2] - box[0], box[3] - box[1])
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        left, top = max(0, int(cx - side)), max(0, int(cy - side))
        right, bottom = min(width, int(cx + side)), min(height, int(cy + side))
        if right - left < 2 or bottom - top < 2:
            return None
        factor = HOG_REGION / (2 * side)
        region = Image.fromarray(pixels[top:bottom, left:right])
        scaled_size = (max(1, round(region.width * factor)), max(1, round(region.height * factor)))
        region = np.asarray(region.resize(scaled_size))
        with self._lock:
            rects = self._hog(region, 0)
        found = [
            (left + r.left() / factor, top + r.top() / factor, left + r.right() / factor, top + r.bottom() / factor)
            for r in rects
        ]
        best = max(found, key=lambda b: _iou(b, box), default=None)
        return best if best is not None and _iou(best, box) > HOG_MIN_IOU else None


def _scaled(box: Box, scale: float) -> Box:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half_w, half_h = scale * (box[2] - box[0]) / 2, scale * (box[3] - box[1]) / 2
    return (cx - half_w, cy - half_h, cx + half_w, cy + half_h)


def _iou(a: Box, b: Box) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class OneViewAligner:
    """An aligner with a single view of each face: its crop."""

    def __call__(self, pixels: np.ndarray, face: Detection) -> Image.Image:
        raise NotImplementedError

    def views(self, pixels: np.ndarray, face: Detection) -> list[Image.Image]:
        return [self(pixels, face)]


class BoxCropAligner(OneViewAligner):
    """The box grown by `margin` pixels (measured in the output crop), clipped to the image, resized."""

    def __init__(self, size: int, margin: int) -> None:
        self.size, self.margin = size, margin

    def __call__(self, pixels: np.ndarray, face: Detection) -> Image.Image:
        box = face.box
        height, width = pixels.shape[:2]
        grow_x = self.margin * (box[2] - box[0]) / (self.size - self.margin) / 2
        grow_y = self.margin * (box[3] - box[1]) / (self.size - self.margin) / 2
        left, top = int(max(box[0] - grow_x, 0)), int(max(box[1] - grow_y, 0))
        right, bottom = int(min(box[2] + grow_x, width)), int(min(box[3] + grow_y, height))
        if right <= left or bottom <= top:
            raise ValueError(f"face box {box} lies outside the {width}x{height} image")
        crop = Image.fromarray(pixels[top:bottom, left:right])
        return crop.resize((self.size, self.size), Image.BILINEAR)


#: Where InsightFace's 112x112 training crops put the left eye, right eye, nose tip and mouth corners.
ARCFACE_POINTS = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 rotation + uniform scale + shift taking points `src` closest to `dst` (Umeyama, 1991)."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, singular, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    flip = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ flip @ vt
    scale = np.trace(np.diag(singular) @ flip) / src_c.var(axis=0).sum()
    return np.hstack([scale * rotation, (dst_mean - scale * rotation @ src_mean)[:, None]])


class ArcFaceAligner(OneViewAligner):
    """The similarity transform that puts the detector's 5 landmarks on `ARCFACE_POINTS`, scaled to `size`.

    A face found without landmarks (dlib's HOG fallback, the centred box) is placed by its two eye
    centres from dlib's 5-point model instead."""

    def __init__(self, size: int = 112) -> None:
        self.size = size
        self._points = ARCFACE_POINTS * size / 112
        self._dlib: DlibChipAligner | None = None
        self._dlib_lock = threading.Lock()

    def __call__(self, pixels: np.ndarray, face: Detection) -> Image.Image:
        if face.landmarks is not None:
            source, target = np.asarray(face.landmarks, dtype=np.float64), self._points
        else:
            source, target = self._eye_centres(pixels, face.box), self._points[:2]
        coefficients = tuple(similarity_transform(target, source).ravel())  # crop -> photo, as PIL wants
        return Image.fromarray(pixels).transform(
            (self.size, self.size), Image.AFFINE, coefficients, resample=Image.BILINEAR
        )

    def _eye_centres(self, pixels: np.ndarray, box: Box) -> np.ndarray:
        with self._dlib_lock:
            if self._dlib is None:  # loaded on first need: most faces come with MTCNN's landmarks
                self._dlib = DlibChipAligner()
        return self._dlib.eye_centres(pixels, box)
