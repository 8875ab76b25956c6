"""ONNX exports are checked against torch once: a later start uses the checked file without running torch."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from model_zoo.onnx_export import onnx_twin
from model_zoo.onnx_runtime import export_path


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.linear(x)


def twin(module: nn.Module, folder):
    torch.manual_seed(0)
    return onnx_twin(module, "tiny", {"size": 4}, folder, example=torch.zeros(2, 4), probe=torch.randn(3, 4),
                     matches=lambda e, f: all(np.allclose(a, b, atol=1e-5) for a, b in zip(e, f, strict=True)))


def test_a_checked_export_is_used_again_without_running_torch(tmp_path) -> None:
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    module = Tiny().eval()
    first = twin(module, tmp_path)
    assert first is not None and module.calls > 0
    module.calls = 0
    again = twin(module, tmp_path)
    assert again is not None and module.calls == 0  # neither the probe nor the export ran torch
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    assert np.allclose(again.run(x), module.linear(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


def test_an_export_changed_since_its_check_is_checked_again(tmp_path) -> None:
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    module = Tiny().eval()
    assert twin(module, tmp_path) is not None
    path = export_path("tiny", {"size": 4}, tmp_path)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # rewritten in place
    module.calls = 0
    assert twin(module, tmp_path) is not None and module.calls > 0


def test_a_damaged_checked_export_is_made_again(tmp_path) -> None:
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    module = Tiny().eval()
    assert twin(module, tmp_path) is not None
    path = export_path("tiny", {"size": 4}, tmp_path)
    stat = path.stat()
    path.write_bytes(b"x" * stat.st_size)  # same size and time, garbage inside
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    session = twin(module, tmp_path)
    assert session is not None and session.run(np.zeros((1, 4), np.float32)).shape == (1, 3)


def test_a_product_embedder_with_a_checked_export_folds_nothing_until_torch_runs(tmp_path, monkeypatch) -> None:
    pytest.importorskip("onnx")
    from model_zoo.product_embedders import create_embedder

    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path))
    first = create_embedder("efficientnet_lite0", backend="onnx")
    pixels = np.random.default_rng(0).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
    expected = first.embed_prepared(pixels)
    again = create_embedder("efficientnet_lite0", backend="onnx")
    assert again._folded is None  # the checked export was used as it is
    assert np.allclose(again.embed_prepared(pixels), expected, atol=1e-5)
    torch_path = create_embedder("efficientnet_lite0", backend="torch")
    assert float((torch_path.embed_prepared(pixels) * expected).sum()) > 0.9999


def test_a_start_on_checked_exports_imports_neither_torch_nor_timm(tmp_path) -> None:
    """The app's page path (issue 37): once the product network's export was made and checked, building the
    embedder, embedding a photo and listing the face models need no torch, whose import was most of a start."""
    pytest.importorskip("onnx")
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, model_zoo\n"
        "embedder = model_zoo.create_embedder('efficientnet_lite0')\n"
        "vector = embedder.embed([np.full((64, 80, 3), 128, np.uint8)])\n"
        "faces = model_zoo.list_face_models(available_only=True)\n"
        "print(embedder.backend, vector.shape, embedder.dim, 'arcface_mobilefacenet' in faces,"
        " sorted(m for m in ('torch', 'timm') if m in sys.modules))\n"
    )
    env = {**os.environ, "LOOKALIKE_CACHE": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[-1].stderr
    first, second = (run.stdout.strip() for run in runs)
    assert first == "onnxruntime (1, 1280) 1280 True ['timm', 'torch']"  # made the export: torch ran
    assert second == "onnxruntime (1, 1280) 1280 True []"
