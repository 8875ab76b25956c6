"""Cut a face out of a photo the way each embedder was trained to see it.

dlib's ResNet was trained on chips made by its own 5-point landmarks and `get_face_chip`; feeding it
anything else costs accuracy. Networks trained on detector boxes (facenet, the seed model) get the
box plus a margin, resized, as facenet-pytorch's `extract_face` does.
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from model_zoo.face_detection import Box
from model_zoo.face_weights import dlib_model_path


class DlibChipAligner:
    """dlib 5-point landmarks inside the detector's box, then `dlib.get_face_chip` (rotation + scale)."""

    def __init__(self, size: int = 150, padding: float = 0.25) -> None:
        import dlib

        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(dlib_model_path("shape_predictor_5_face_landmarks.dat")))
        self._lock = threading.Lock()
        self.size, self.padding = size, padding

    def __call__(self, pixels: np.ndarray, box: Box) -> Image.Image:
        rect = self._dlib.rectangle(*(round(v) for v in box))
        with self._lock:
            shape = self._predictor(pixels, rect)
        return Image.fromarray(self._dlib.get_face_chip(pixels, shape, size=self.size, padding=self.padding))


class BoxCropAligner:
    """The box grown by `margin` pixels (measured in the output crop), clipped to the image, resized."""

    def __init__(self, size: int, margin: int) -> None:
        self.size, self.margin = size, margin

    def __call__(self, pixels: np.ndarray, box: Box) -> Image.Image:
        height, width = pixels.shape[:2]
        grow_x = self.margin * (box[2] - box[0]) / (self.size - self.margin) / 2
        grow_y = self.margin * (box[3] - box[1]) / (self.size - self.margin) / 2
        left, top = int(max(box[0] - grow_x, 0)), int(max(box[1] - grow_y, 0))
        right, bottom = int(min(box[2] + grow_x, width)), int(min(box[3] + grow_y, height))
        if right <= left or bottom <= top:
            raise ValueError(f"face box {box} lies outside the {width}x{height} image")
        crop = Image.fromarray(pixels[top:bottom, left:right])
        return crop.resize((self.size, self.size), Image.BILINEAR)
