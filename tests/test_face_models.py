"""Face model registry and weight loading, with weights each test makes itself (nothing downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from model_zoo import WeightsUnavailableError, create_face_model, get_face_cfg, list_face_models
from model_zoo.face_embedders import SeedTripletNet, distances

CROP = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))


def test_every_model_carries_metric_threshold_and_alignment() -> None:
    assert {"dlib_resnet", "facenet_vggface2", "facenet_casia", "seed_resnet50_triplet"} <= set(
        list_face_models()
    )
    for name in list_face_models():
        cfg = get_face_cfg(name)
        assert cfg["metric"] in {"euclidean", "cosine"}
        assert cfg["alignment"] in {"dlib_chip", "box_crop"}
        assert {"dim", "threshold", "input_size", "distance_max", "sweep"} <= set(cfg)
    assert get_face_cfg("dlib_resnet")["threshold"] is not None  # the default is calibrated
    assert "dlib_resnet" in list_face_models(available_only=True)


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
    assert "\n" not in str(error.value) and "dlib_resnet" in str(error.value)
    assert "facenet_casia" not in list_face_models(available_only=True)


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
    path.rename(tmp_path / "checkpoints" / get_face_cfg("facenet_casia")["weights_file"])
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
        get_face_cfg("seed_resnet50_triplet")["alpha"], rel=1e-4
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
