"""The face embedding cache is keyed by what makes an embedding, never by how its distances are read: a
recalibrated threshold keeps every cached face, a changed crop starts a new cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.faces import cached
from model_zoo import DEFAULT_FACE_MODEL, get_face_cfg


def test_the_cache_key_follows_the_embedding_not_the_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = get_face_cfg(DEFAULT_FACE_MODEL)

    def cache_file(**changes: object) -> Path:
        monkeypatch.setattr(cached, "get_face_cfg", lambda name: cfg.replace(**changes))
        return cached.face_cache(DEFAULT_FACE_MODEL).path

    today = cache_file()
    assert cache_file(identify_threshold=cfg.identify_threshold / 2) == today
    assert cache_file(threshold=0.1, identify_threshold=0.05, distance_max=9.0, sweep=(0.1, 0.2, 0.01),
                      description="recalibrated") == today
    assert cache_file(input_size=(cfg.input_size or 112) + 16) != today
    assert cache_file(flip=not cfg.flip) != today
