"""Detection and alignment on real photos (facenet-pytorch's samples, LFW)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.images.loading import load_image
from model_zoo.face_alignment import ARCFACE_POINTS, LANDMARK_MODEL, ArcFaceAligner, BoxCropAligner, DlibChipAligner
from model_zoo.face_detection import Detection, FaceDetector, centre_box
from model_zoo.weights import packaged_model_path


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def sample_photos(data_root: Path) -> list[Path]:
    photos = sorted((data_root / "faces_samples" / "facenet-pytorch" / "test_images").glob("*/1.jpg"))
    assert len(photos) == 4
    return photos


def test_dlib_files_found_without_importing_the_package() -> None:
    import sys

    path = packaged_model_path(*LANDMARK_MODEL)
    assert path.is_file() and path.parent.name == "models"
    assert "face_recognition_models" not in sys.modules  # its __init__ needs pkg_resources


def test_mtcnn_finds_one_face_with_landmarks_in_each_sample(detector: FaceDetector, sample_photos) -> None:
    for photo in sample_photos:
        image = load_image(photo)
        faces = detector.detect(image)
        assert len(faces) >= 1, photo
        face = faces[0]
        x1, y1, x2, y2 = face.box
        assert face.detector == "mtcnn" and face.confidence > 0.95
        assert 0 <= x1 < x2 <= image.width + 2 and 0 <= y1 < y2 <= image.height + 2
        assert face.landmarks is not None and len(face.landmarks) == 5
        (lx, ly), (rx, _) = face.landmarks[:2]
        assert x1 <= lx < rx <= x2 and y1 <= ly <= y2  # eyes inside the box, left before right


def test_onnx_stages_find_what_torch_finds(detector: FaceDetector, sample_photos, data_root: Path) -> None:
    from model_zoo.mtcnn_onnx import _OnnxStage

    assert all(isinstance(getattr(detector._mtcnn, name), _OnnxStage) for name in ("pnet", "rnet", "onet"))
    reference = FaceDetector(backend="torch")
    assert not isinstance(reference._mtcnn.pnet, _OnnxStage)
    lfw = sorted((data_root / "faces").glob("*/*_0001.jpg"))[:8]
    for photo in [*sample_photos, *lfw]:
        image = load_image(photo)
        found, expected = detector.detect(image), reference.detect(image)
        assert len(found) == len(expected), photo
        for face, twin in zip(found, expected, strict=True):
            assert np.allclose(face.box, twin.box, atol=0.05) and abs(face.confidence - twin.confidence) < 1e-4
            assert np.allclose(face.landmarks, twin.landmarks, atol=0.05)


def test_large_photo_is_detected_in_original_coordinates(detector: FaceDetector, sample_photos) -> None:
    image = load_image(sample_photos[0])
    big = image.resize((image.width * 3, image.height * 3))  # longer side 1536 > DETECT_MAX_SIDE
    small_box = np.array(detector.detect(image)[0].box)
    big_box = np.array(detector.detect(big)[0].box)
    assert np.allclose(big_box / 3, small_box, atol=6)


def test_aligners_make_each_models_input_size(detector: FaceDetector, sample_photos) -> None:
    image = load_image(sample_photos[1])
    face = detector.detect(image)[0]
    pixels = np.asarray(image)
    assert DlibChipAligner(150, 0.25)(pixels, face).size == (150, 150)
    assert BoxCropAligner(160, 14)(pixels, face).size == (160, 160)
    assert ArcFaceAligner(112)(pixels, face).size == (112, 112)
    with pytest.raises(ValueError, match="outside"):
        BoxCropAligner(160, 14)(pixels, Detection((5000, 5000, 5100, 5100), 1.0, None, "test"))


def test_arcface_crop_puts_the_five_landmarks_on_insightfaces_points() -> None:
    """Dots drawn at a rotated, scaled, shifted copy of the template land back on the template."""
    angle, scale, shift = np.deg2rad(20), 2.5, np.array([140.0, 90.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = ARCFACE_POINTS @ (scale * rotation).T + shift
    canvas = np.zeros((500, 500, 3), np.uint8)
    for i, (x, y) in enumerate(landmarks):
        canvas[round(y) - 4 : round(y) + 5, round(x) - 4 : round(x) + 5, i % 3] = 255
    face = Detection((0.0, 0.0, 500.0, 500.0), 1.0, tuple(map(tuple, landmarks)), "test")
    crop = np.asarray(ArcFaceAligner(112)(canvas, face)).astype(float)
    for i, (x, y) in enumerate(ARCFACE_POINTS):
        top, left = round(y) - 7, round(x) - 7
        window = crop[top : top + 15, left : left + 15, i % 3]  # no other dot of this colour is this close
        rows, cols = np.indices(window.shape)
        centre = np.array([(cols * window).sum(), (rows * window).sum()]) / window.sum() + [left, top]
        assert np.abs(centre - [x, y]).max() < 1.0, f"landmark {i} lands at {centre}, not {(x, y)}"


def test_arcface_crop_without_landmarks_places_the_eyes_from_dlibs_points(
    detector: FaceDetector, sample_photos
) -> None:
    """A face found by HOG (no landmarks) still gets its eyes near the template's, judged by MTCNN's."""
    image = load_image(sample_photos[0])
    face = detector.detect(image)[0]
    crop = ArcFaceAligner(112)(np.asarray(image), Detection(face.box, 1.0, None, "hog"))
    eyes = detector.detect(crop.resize((224, 224)))[0].landmarks[:2]
    found = np.array(eyes) / 2
    assert np.abs(found - ARCFACE_POINTS[:2]).max() < 6, found


def test_no_face_in_a_gradient(detector: FaceDetector) -> None:
    gradient = np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1))
    assert detector.detect(Image.fromarray(gradient).convert("RGB")) == []


def test_centre_box_is_a_centred_square() -> None:
    x1, y1, x2, y2 = centre_box(250, 250)
    assert x2 - x1 == pytest.approx(y2 - y1) and (x1 + x2) / 2 == pytest.approx(125)
