"""The classifier-head grid on tiny synthetic features: stop rule, checkpoint rule, report files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lookalike.evaluation.report import per_class_rows, plot_confusion, plot_curves, write_table
from lookalike.products.splits import stratified_split
from lookalike.training.classifier_heads import build_head, predict_proba
from lookalike.training.head_grid import FeatureSplits, best_variant, run_grid, train_variant


def _blobs(n: int = 240, dim: int = 16, classes: int = 4, spread: float = 1.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(size=(classes, dim)) * 2
    return (centres[labels] + spread * rng.normal(size=(n, dim))).astype(np.float32), labels


@pytest.fixture(scope="module")
def splits() -> FeatureSplits:
    features, labels = _blobs()
    train, val, test = stratified_split(labels)
    return FeatureSplits(*((features[i], labels[i]) for i in (train, val, test)))


def test_split_is_stratified_disjoint_and_fixed() -> None:
    labels = np.repeat(np.arange(5), 40)
    first = stratified_split(labels)
    assert all(np.array_equal(a, b) for a, b in zip(first, stratified_split(labels), strict=True))
    assert sum(len(part) for part in first) == len(labels)
    assert len(np.unique(np.concatenate(first))) == len(labels)
    for part in first:
        counts = np.bincount(labels[part], minlength=5)
        assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("architecture", ["linear", "dense512x2"])
def test_heads_give_class_probabilities(architecture: str) -> None:
    head = build_head(architecture, 16, 4)
    proba = predict_proba(head, np.zeros((3, 16), np.float32))
    assert proba.shape == (3, 4)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)


def test_early_stopping_triggers_on_validation_loss(splits: FeatureSplits) -> None:
    # a large learning rate on a small set overfits fast: val loss turns up and stops the run
    result = train_variant(splits, "dense512x2", "adam", 1e-2, max_epochs=50, patience=3)
    assert result.stop_epoch < 50
    losses = result.history["val_loss"]
    best = int(np.argmin(losses))
    assert len(losses) == result.stop_epoch == best + 1 + 3  # exactly `patience` epochs without progress


def test_checkpoint_is_the_best_validation_accuracy_epoch(splits: FeatureSplits) -> None:
    result = train_variant(splits, "linear", "rmsprop", 1e-3, max_epochs=12)
    accuracies = result.history["val_acc"]
    assert result.best_epoch == int(np.argmax(accuracies)) + 1  # first epoch reaching the maximum
    assert result.val_acc == pytest.approx(max(accuracies))
    x_val, y_val = splits.val
    with torch.no_grad():
        restored = (result.head(torch.as_tensor(x_val)).argmax(1).numpy() == y_val).mean()
    assert restored == pytest.approx(result.val_acc)  # the kept weights are that epoch's weights


def test_grid_covers_optimisers_and_rates_and_writes_the_report(
    splits: FeatureSplits, tmp_path: Path
) -> None:
    results = run_grid(splits, ["linear"], max_epochs=4)
    assert [(r.optimizer, r.lr) for r in results] == [
        (o, lr) for o in ("adam", "rmsprop") for lr in (1e-2, 1e-3, 1e-4)
    ]
    best = best_variant(results)
    assert best.val_acc == max(r.val_acc for r in results)
    assert best.test_acc > 0.5  # well-separated blobs

    text = write_table([r.row() for r in results], tmp_path, "grid", "Grid")
    assert text.startswith("## Grid") and "| linear | rmsprop |" in text
    assert (tmp_path / "grid.csv").read_text().splitlines()[0].startswith("architecture,optimizer,lr")
    x_test, y_test = splits.test
    predicted = predict_proba(best.head, x_test).argmax(1)
    rows = per_class_rows(y_test, predicted, ["a", "b", "c", "d"])
    assert [r["class"] for r in rows] == ["a", "b", "c", "d", "macro avg"]
    plot_confusion(y_test, predicted, ["a", "b", "c", "d"], tmp_path / "confusion.png")
    plot_curves({r.name: r.history for r in results}, tmp_path / "curves.png")
    for name in ("confusion.png", "curves.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("architecture", ["linear", "dense512x2"])
def test_exported_head_gives_the_torch_head_probabilities(
    architecture: str, splits: FeatureSplits, tmp_path: Path
) -> None:
    from lookalike.products.heads import CategoryHead
    from lookalike.products.mlp_head import load_head
    from lookalike.training.head_export import export_head

    trained = train_variant(splits, architecture, "adam", 1e-3, max_epochs=3).head
    exported = export_head(trained, ["a", "b", "c", "d"])
    assert isinstance(exported, CategoryHead) == (architecture == "linear")  # linear: build-time format
    exported.save(tmp_path / "head.npz")
    loaded = load_head(tmp_path / "head.npz")
    x_test = splits.test[0]
    np.testing.assert_allclose(loaded.predict_proba(x_test), predict_proba(trained, x_test), atol=1e-5)
    assert loaded.rank(x_test[0])[0][0] == "abcd"[int(predict_proba(trained, x_test[:1]).argmax())]


def test_refit_retrains_the_winning_recipe_on_train_and_validation(splits: FeatureSplits) -> None:
    from lookalike.training.head_grid import refit

    winner = train_variant(splits, "linear", "adam", 1e-2, max_epochs=6)
    head = refit(splits, winner)
    assert isinstance(head, torch.nn.Linear) and not head.training
    x_seen = np.concatenate([splits.train[0], splits.val[0]])
    y_seen = np.concatenate([splits.train[1], splits.val[1]])
    assert (predict_proba(head, x_seen).argmax(1) == y_seen).mean() > 0.8
