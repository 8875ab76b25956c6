"""The training commands on the shared photos (slow: real embeddings; run with `pytest -m slow`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lookalike.cli.main import main

pytestmark = pytest.mark.slow
CATEGORIES = ("watches", "sunglasses", "handbags", "belts")


@pytest.fixture(scope="module")
def small_catalog(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("catalog")
    for category in CATEGORIES:
        (root / category).mkdir()
        for photo in sorted((data_root / "products" / category).glob("*.jpg"))[:40]:
            (root / category / photo.name).symlink_to(photo)
    return root


def test_train_head_cli_on_real_photos(small_catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["train-head", "--catalog", str(small_catalog), "--out", str(out), "--epochs", "20"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["photos"] == 160 and summary["classes"] == 4
    assert summary["best"]["test_acc"] >= summary["baseline_test_acc"] - 0.05
    assert (out / "confusion.png").is_file() and (out / "grid.md").is_file()
