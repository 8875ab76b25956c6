"""ONNX exports of torch networks, made once and checked against torch on a probe (cosine >=
EXPORT_MIN_COSINE for the product embedders) before they are used; one that does not match is discarded and
torch runs the network as before. A checked export is found again without torch (`onnx_runtime.verified_export`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model_zoo.onnx_runtime import (
    EXPORT_MIN_COSINE,
    OPSET,
    OnnxSession,
    checked_product_export,
    export_path,
    mark_verified,
    min_cosine,
    verified_export,
)


class _PreLogits(nn.Module):
    """A timm network's pooled pre-logits features: what the product embedders return."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)


def pre_logits(net: nn.Module) -> nn.Module:
    return _PreLogits(net).eval()


def export_product_network(
    net: Callable[[], nn.Module], size: int, config: dict[str, Any], folder: Path
) -> OnnxSession | None:
    """The ONNX twin of the pre-logits features of the network `net()` gives, at `size` px (see `onnx_twin`);
    None keeps torch. `net` is called only when the export is not yet made and checked."""
    checked = checked_product_export(config, size, folder)
    if checked is not None:
        return checked
    name, key = str(config.get("name", "model")), {**config, "size": size}
    return onnx_twin(
        pre_logits(net()), name, key, folder,
        example=torch.zeros(2, 3, size, size), probe=torch.randn(3, 3, size, size, generator=_seeded()),
        matches=lambda expected, found: min_cosine(expected[0], found[0]) >= EXPORT_MIN_COSINE,
    )


def onnx_twin(
    module: nn.Module,
    name: str,
    key: dict[str, Any],
    folder: Path,
    example: torch.Tensor,
    probe: torch.Tensor,
    matches: Callable[[list[np.ndarray], list[np.ndarray]], bool],
    dynamic: tuple[int, ...] = (0,),
    threads: int | None = None,
) -> OnnxSession | None:
    """`module` (one input, one or more outputs) exported to ONNX once into `folder`, keyed by `key`
    and the torch version, and checked on `probe`: `matches(torch outputs, onnx outputs)`. None when it
    cannot be made or does not match, so the caller keeps torch; an export checked before is used without
    running `module` again (`verified_export`). `dynamic`: the input's free axes; `threads`: see `OnnxSession`."""
    path = export_path(name, key, folder)
    checked = verified_export(path, name, threads)
    if checked is not None:
        return checked
    with torch.inference_mode():
        expected = module(probe)
    expected = [t.numpy() for t in (expected if isinstance(expected, tuple | list) else (expected,))]
    if not path.is_file():
        try:
            import onnx  # noqa: F401  (the exporter needs it; without it we stay on torch)
        except ImportError:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        outputs = [f"output{i}" for i in range(len(expected))]
        axes = {"pixels": {axis: f"axis{axis}" for axis in dynamic}, **{output: {0: "axis0"} for output in outputs}}
        try:
            torch.onnx.export(
                module, example, str(tmp), input_names=["pixels"], output_names=outputs, dynamic_axes=axes,
                opset_version=OPSET, dynamo=False,
            )
            os.replace(tmp, path)  # a concurrent or interrupted export never leaves a half file in place
        except Exception:  # any exporter failure: this network simply stays on torch
            tmp.unlink(missing_ok=True)
            return None
    session = OnnxSession(path, f"the ONNX export of {name}", threads)
    found = session.run_all(probe.numpy())
    shapes_match = [f.shape for f in found] == [e.shape for e in expected]
    if not shapes_match or not matches(expected, found):
        path.unlink(missing_ok=True)
        return None
    mark_verified(path)
    return session


def _seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)
