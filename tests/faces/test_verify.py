"""The verify API on real photos: LFW pairs, a photo with no face, a photo with several faces."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.evaluation.face_pairs import limit_pairs, read_lfw_pairs
from lookalike.faces.verify import FaceVerifier, NoFaceError, VerifyResult, verify
from model_zoo import DEFAULT_FACE_MODEL, get_face_cfg


@pytest.fixture(scope="module", params=[DEFAULT_FACE_MODEL, "dlib_resnet"])
def verifier(request) -> FaceVerifier:
    return FaceVerifier(request.param, processes=1)


@pytest.fixture(scope="module")
def faces(data_root: Path) -> Path:
    return data_root / "faces"


@pytest.fixture(scope="module")
def samples(data_root: Path) -> list[Path]:
    return sorted((data_root / "faces_samples" / "facenet-pytorch" / "test_images").glob("*/1.jpg"))


@pytest.fixture(scope="module")
def group_photo(samples: list[Path], tmp_path_factory) -> Path:
    """Four sample portraits side by side at different sizes; the third is pasted largest."""
    heights = (150, 170, 300, 190)
    canvas = Image.new("RGB", (1100, 340), (230, 230, 230))
    x = 10
    for photo, height in zip(samples, heights, strict=True):
        face = Image.open(photo).convert("RGB")
        face = face.resize((round(face.width * height / face.height), height))
        canvas.paste(face, (x, 20))
        x += face.width + 10
    path = tmp_path_factory.mktemp("faces") / "group.jpg"
    canvas.save(path)
    return path


def test_same_person_is_closer_than_different_people(verifier: FaceVerifier, faces: Path) -> None:
    pairs = limit_pairs(read_lfw_pairs(faces / "pairs.txt"), 6)  # 3 matched, 3 mismatched
    results = {p: verifier.verify(faces / p.image1, faces / p.image2) for p in pairs}
    same = [r.distance for p, r in results.items() if p.same]
    other = [r.distance for p, r in results.items() if not p.same]
    assert len(same) == len(other) == 3
    assert np.mean(same) < np.mean(other)
    assert sum(r.same_person == p.same for p, r in results.items()) >= 5


def test_result_shape_and_json(verifier: FaceVerifier, faces: Path) -> None:
    a, b = sorted((faces / "Colin_Powell").glob("*.jpg"))[:2]
    result = verifier.verify(a, b)
    cfg = get_face_cfg(verifier.model)
    assert isinstance(result, VerifyResult) and result.same_person and result.model == verifier.model
    assert result.threshold == verifier.threshold == cfg.threshold and verifier.metric == cfg.metric
    face = result.faces[0]
    assert face.count == 1 and len(face.all_boxes) == 1 and len(face.landmarks) == 5
    assert face.aligned.size == (cfg.input_size, cfg.input_size)
    payload = json.loads(json.dumps(result.to_dict()))
    assert {"model", "distance", "threshold", "same_person", "faces", "timings_ms"} <= set(payload)
    assert {"box", "confidence", "count"} <= set(payload["faces"][0]) and "aligned" not in payload["faces"][0]
    assert verifier.verify(a, b, threshold=0.0).same_person is False


def test_no_face_names_the_image(verifier: FaceVerifier, faces: Path, tmp_path: Path) -> None:
    gradient = np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1))
    blank = tmp_path / "gradient.png"
    Image.fromarray(gradient).convert("RGB").save(blank)
    face = next((faces / "Colin_Powell").glob("*.jpg"))
    with pytest.raises(NoFaceError, match=r"second image \(.*gradient\.png\)"):
        verifier.verify(face, blank)
    with pytest.raises(NoFaceError, match="first image"):
        verifier.verify(gradient, face)
    assert issubclass(NoFaceError, ValueError)


def test_several_faces_largest_by_default_and_face_index(
    verifier: FaceVerifier, group_photo, samples
) -> None:
    result = verifier.verify(group_photo, samples[2])
    group = result.faces[0]
    assert group.count >= 4 and len(group.all_boxes) == group.count
    areas = [(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in group.all_boxes]
    assert group.index == 0 and areas[0] == max(areas)
    assert result.same_person  # the largest face is the third sample, the other photo

    other = verifier.verify(group_photo, samples[2], face_index=(1, 0))
    assert other.faces[0].index == 1 and other.faces[0].box == group.all_boxes[1]
    assert other.distance > result.distance
    with pytest.raises(ValueError, match="out of range"):
        verifier.verify(group_photo, samples[2], face_index=(group.count, 0))


def test_threads_and_a_helper_process_agree(verifier: FaceVerifier, faces: Path) -> None:
    a, b = sorted((faces / "Colin_Powell").glob("*.jpg"))[:2]
    expected = verifier.verify(a, b).distance
    parallel = FaceVerifier(verifier.model, processes=2)  # the second photo is embedded in a helper process
    try:
        with ThreadPoolExecutor(2) as pool:
            found = list(pool.map(lambda _: parallel.verify(a, b).distance, range(2)))
    finally:
        parallel.close()
    assert found == pytest.approx([expected] * 2, abs=1e-5)


def test_one_call_verify(faces: Path) -> None:
    a, b = sorted((faces / "Colin_Powell").glob("*.jpg"))[:2]
    result = verify(str(a), str(b), threshold=1.0)
    assert result.threshold == 1.0 and result.same_person


def test_helpers_are_forked_only_while_no_other_thread_runs() -> None:
    """A fork copies locks other threads may hold; with a second thread alive helpers must be spawned."""
    import sys
    import threading

    from lookalike.faces.process_pool import _start_method

    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert _start_method() == "spawn"
    finally:
        release.set()
        other.join()
    if threading.active_count() == 1:
        assert _start_method() == ("fork" if sys.platform.startswith("linux") else "spawn")


def test_any_face_finds_the_matching_face_of_a_group_photo(verifier: FaceVerifier, group_photo, samples) -> None:
    """The person of samples[1] is not the largest face of the group: only faces="all" finds them."""
    largest = verifier.verify(samples[1], group_photo)
    best = verifier.verify(samples[1], group_photo, faces="all")
    group = best.faces[1]
    assert best.pairs_compared == group.count >= 4
    assert group.index != 0 and best.distance < largest.distance
    assert best.same_person and not largest.same_person
    assert best.to_dict()["pairs_compared"] == group.count
    with pytest.raises(ValueError, match="not both"):
        verifier.verify(samples[1], group_photo, faces="all", face_index=(0, 0))


def test_a_face_cut_by_the_border_is_aligned_without_the_landmarks_outside_it(
    verifier: FaceVerifier, faces: Path, tmp_path: Path
) -> None:
    """MTCNN guesses eyes outside a face cut by the image's edge; aligning on them gave a mostly black crop
    (distance 0.82 for the same person). Such landmarks are dropped and the face is placed by its own box."""
    a, b = sorted((faces / "Colin_Powell").glob("*.jpg"))[:2]
    photo = Image.open(a).convert("RGB")
    cut = photo.crop((int(photo.width * 0.42), 0, photo.width, photo.height))  # the left of the face is gone
    result = verifier.verify(b, cut)
    face = result.faces[1]
    assert face.landmarks is None or all(0 <= x < cut.width and 0 <= y < cut.height for x, y in face.landmarks)
    assert face.box[0] >= 0 and face.box[2] <= cut.width  # boxes are clipped to the photo
    assert result.same_person
    assert np.asarray(face.aligned).mean() > 40  # not a mostly black crop


def test_cli_says_which_faces_were_compared(group_photo, samples, capsys) -> None:
    from lookalike.cli.main import main

    assert main(["verify", str(samples[1]), str(group_photo), "--any-face"]) == 0
    text = capsys.readouterr().out
    assert "image 1: face 1 of 1" in text and "image 2: face" in text and "closest of" in text
    assert "-0.0" not in text
    assert main(["verify", str(samples[1]), str(group_photo), "--any-face", "--face-index", "0", "0"]) == 2
