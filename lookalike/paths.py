"""Where the project reads real photos from and keeps its caches; both overridable by environment."""

from __future__ import annotations

import os
from pathlib import Path

from model_zoo.cache import cache_dir  # one rule for both packages; model_zoo may not import lookalike

__all__ = ["REPO_ROOT", "cache_dir", "data_dir"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The shared photo collection (`LOOKALIKE_DATA`, default `../shared/data` beside the repo)."""
    return Path(os.environ.get("LOOKALIKE_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()
