"""Evaluation metrics, and the `verify` / `eval-faces` commands end to end on a few LFW pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lookalike.cli.main import main
from lookalike.evaluation.face_metrics import best_threshold, kfold_accuracy, tar_at_far, threshold_sweep

EVAL_KEYS = {
    "pairs",
    "accuracy",
    "accuracy_std",
    "auc",
    "tar_at_far_1e-3",
    "best_threshold",
    "no_face",
    "images_per_second",
}


def test_best_threshold_separates_and_kfold_uses_other_folds() -> None:
    distances = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.15])
    same = np.array([True, True, True, False, False, False])
    threshold, accuracy = best_threshold(distances, same)
    assert 0.3 <= threshold < 0.7 and accuracy == pytest.approx(5 / 6)
    separable = np.array([0.1, 0.9, 0.2, 0.8])
    labels = np.array([True, False, True, False])
    mean, std, thresholds = kfold_accuracy(separable, labels, np.array([1, 1, 2, 2]))
    assert (mean, std) == (1.0, 0.0) and len(thresholds) == 2
    assert tar_at_far(separable, labels) == 1.0
    rows = threshold_sweep(separable, labels, 0.5, 1.0, 0.1)
    assert [r["threshold"] for r in rows] == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert rows[0]["accuracy"] == 1.0 and rows[-1]["far"] == 1.0


def test_eval_faces_json_on_a_subset(data_root: Path, tmp_path: Path, capsys) -> None:
    plot = tmp_path / "roc.png"
    argv = ["eval-faces", str(data_root / "faces"), "--limit", "10", "--json", "--sweep", "--plot", str(plot)]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) >= EVAL_KEYS
    assert summary["pairs"] == 10 and summary["folds"] == 5
    assert 0.5 <= summary["accuracy"] <= 1.0 and summary["auc"] >= 0.8
    assert summary["images_embedded"] == summary["images"] and summary["images_per_second"] > 0
    assert summary["sweep"][0]["threshold"] == pytest.approx(0.3)
    assert plot.read_bytes()[:4] == b"\x89PNG"

    assert main(argv[:5]) == 0  # second run: every embedding comes from the cache
    again = json.loads(capsys.readouterr().out)
    assert again["images_embedded"] == 0 and again["accuracy"] == summary["accuracy"]


def test_verify_command_json(data_root: Path, capsys) -> None:
    a, b = sorted((data_root / "faces" / "Colin_Powell").glob("*.jpg"))[:2]
    assert main(["verify", str(a), str(b), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload) >= {"model", "distance", "threshold", "same_person", "faces", "timings_ms"}
    assert payload["same_person"] is True and payload["faces"][0]["count"] == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["verify", "missing.jpg", "missing.jpg"], "does not exist"),
        (["verify", "x.jpg", "y.jpg", "--model", "nope"], "unknown face model 'nope'"),
        (["eval-faces", "no/such/dir"], "faces folder not found"),
    ],
)
def test_bad_input_is_one_line_error(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_no_face_error_from_the_command(data_root: Path, tmp_path: Path, capsys) -> None:
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (90, 120, 200)).save(blank)
    face = next((data_root / "faces" / "Colin_Powell").glob("*.jpg"))
    assert main(["verify", str(face), str(blank)]) == 2
    assert "no face found in the second image" in capsys.readouterr().err


@pytest.mark.slow
def test_default_model_on_all_lfw_pairs(data_root: Path, capsys) -> None:
    assert main(["eval-faces", str(data_root / "faces"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs"] == 3000
    assert summary["accuracy"] >= 0.99 and summary["auc"] >= 0.995
