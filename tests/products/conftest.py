"""Fixtures of tiny product indexes (`tiny_index`), built with a stand-in embedder in a second."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.products.tiny_index import build_tiny, colour_photos


@pytest.fixture
def tiny_catalog(tmp_path: Path) -> Path:
    return colour_photos(tmp_path / "catalog", 6)


@pytest.fixture
def tiny_index(tiny_catalog: Path, tmp_path: Path) -> Path:
    out = tmp_path / "index"
    build_tiny(tiny_catalog, out)
    return out
