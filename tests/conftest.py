from __future__ import annotations

import os
from pathlib import Path

import pytest

from lookalike.paths import data_dir


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = data_dir()
    if not (root / "products").is_dir():
        message = f"shared photo collection not found at {root} (set LOOKALIKE_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI always has ../shared: a silent skip would hide every data test
        pytest.skip(message)
    return root


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never read or pollute the user's embedding cache."""
    os.environ["LOOKALIKE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
