"""The embedding cache only saves time, so it never fails a run: a damaged file is set aside and a fresh one
started, and a disk refusing the cache leaves the run without one; both with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from lookalike.images.cache import EmbeddingCache

CONFIG = {"name": "damage-test", "size": 8}
DIM = 16


def _entries(count: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {f"{seed}-{i:05d}": (rng.normal(size=DIM).astype(np.float32), {"width": i}) for i in range(count)}


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_damaged_cache_is_set_aside_and_rebuilt(
    damage: str, cache_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = EmbeddingCache("test", CONFIG, DIM)
    stored = _entries(2000)
    cache.put_many(stored)
    assert len(cache.get_many(stored)) == 2000
    data = cache.path.read_bytes()
    if damage == "truncated":
        cache.path.write_bytes(data[: len(data) // 3])
    else:
        cache.path.write_bytes(b"\x00garbage" * 8 + data[64:])
    with caplog.at_level(logging.WARNING):
        again = EmbeddingCache("test", CONFIG, DIM)
        assert again.get_many(stored) == {}  # embedded again, not an error
    assert "is damaged" in caplog.text and "starting a fresh one" in caplog.text
    assert len(list(again.path.parent.glob(f"{again.path.name}.damaged-*"))) == 1
    fresh = _entries(5, seed=1)
    again.put_many(fresh)
    found = EmbeddingCache("test", CONFIG, DIM).get_many(fresh)
    assert found.keys() == fresh.keys() and not again.disabled
    np.testing.assert_array_equal(found["1-00003"][0], fresh["1-00003"][0])


def test_a_cache_the_disk_refuses_is_skipped_with_a_warning(
    cache_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = EmbeddingCache("test", CONFIG, DIM).path
    blocked.unlink()
    blocked.mkdir()  # SQLite cannot open a folder: as a full or read-only disk, it refuses the file
    with caplog.at_level(logging.WARNING):
        cache = EmbeddingCache("test", CONFIG, DIM)
        cache.put_many(_entries(3))
        assert cache.get_many(_entries(3)) == {}
    assert cache.disabled and "cannot be used" in caplog.text
