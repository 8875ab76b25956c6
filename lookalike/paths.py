"""Where the project reads real photos from and keeps its caches; both overridable by environment."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The shared photo collection (`LOOKALIKE_DATA`, default `../shared/data` beside the repo)."""
    return Path(os.environ.get("LOOKALIKE_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


def cache_dir() -> Path:
    """Embedding caches (`LOOKALIKE_CACHE`, default `~/.cache/lookalike`)."""
    path = Path(os.environ.get("LOOKALIKE_CACHE", Path.home() / ".cache" / "lookalike"))
    path.mkdir(parents=True, exist_ok=True)
    return path
