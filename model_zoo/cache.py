"""Where model_zoo keeps its ONNX exports: `LOOKALIKE_CACHE`, default `~/.cache/lookalike`.

Defined here, not in `lookalike`, so model_zoo imports nothing of `lookalike`; `lookalike.paths.cache_dir`
is this function, so the two packages share one cache folder and one rule for finding it.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache folder (`LOOKALIKE_CACHE`, default `~/.cache/lookalike`), created if missing."""
    path = Path(os.environ.get("LOOKALIKE_CACHE", Path.home() / ".cache" / "lookalike"))
    path.mkdir(parents=True, exist_ok=True)
    return path
