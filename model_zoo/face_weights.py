"""Find face-model weights on disk, never on the network.

dlib's files ship inside the `face_recognition_models` package, whose `__init__` imports
`pkg_resources` (gone from recent setuptools), so the folder is found through importlib's finder
without running that code. facenet-pytorch weights live in the torch hub cache, where
`InceptionResnetV1(pretrained=...)` would put them; we look there first so an offline machine fails
at once instead of hanging on a download.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from model_zoo.registry import WeightsUnavailableError

DEFAULT_MODEL_HINT = "the default model 'dlib_resnet' works offline"


def dlib_model_path(filename: str) -> Path:
    """Path of one of the .dat files shipped by `face_recognition_models`."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            f"dlib model {filename} needs the package face_recognition_models (pip install it)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    if not path.is_file():
        raise WeightsUnavailableError(f"dlib model file missing: {path} (reinstall face_recognition_models)")
    return path


def torch_hub_checkpoint(filename: str) -> Path:
    """Where torch hub (and facenet-pytorch) caches a downloaded checkpoint: $TORCH_HOME/checkpoints."""
    torch_home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(torch_home)) / "checkpoints" / filename


def resolve_weights(
    model: str, source: str | None, filename: str | None, weights: str | os.PathLike | None
) -> Path:
    """The weights file: an explicit path, else the model's default location, else a one-line error."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise WeightsUnavailableError(f"weights file for {model} not found: {path}")
        return path
    if source == "face_recognition_models" and filename:
        return dlib_model_path(filename)
    if source == "torch_hub" and filename:
        path = torch_hub_checkpoint(filename)
        if path.is_file():
            return path
        raise WeightsUnavailableError(
            f"{model} weights are not cached at {path} and cannot be downloaded offline; "
            f"pass weights=PATH, or use {DEFAULT_MODEL_HINT}"
        )
    raise WeightsUnavailableError(f"{model} has no published weights: pass weights=PATH to a checkpoint")
