"""Verification metrics over pair distances: the report's k-fold accuracy, ROC/AUC, TAR at a FAR.

Accuracy follows the report's protocol (facenet's `calculate_roc`): for each fold the threshold is the
one that maximises accuracy on the other folds, and the fold is scored with it.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def best_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold (`same` when distance <= threshold) with the highest accuracy, and that accuracy.

    Every distinct midpoint between sorted distances is tried, so no grid step hides the optimum."""
    order = np.argsort(distances, kind="stable")
    d, s = distances[order], same[order].astype(np.int64)
    # accepting the first k pairs: correct = matched among them + mismatched among the rest
    correct = (
        np.concatenate([[0], np.cumsum(s)]) + (len(s) - s.sum()) - np.concatenate([[0], np.cumsum(1 - s)])
    )
    cuts = np.concatenate([[d[0] - 1e-6], (d[:-1] + d[1:]) / 2, [d[-1] + 1e-6]])
    valid = np.concatenate([[True], d[:-1] < d[1:], [True]])  # never split equal distances
    k = int(np.argmax(np.where(valid, correct, -1)))
    return float(cuts[k]), float(correct[k] / len(s))


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((distances <= threshold) == same))


def fold_labels(folds: np.ndarray, default_folds: int = 10) -> np.ndarray:
    """The file's folds when it has several, else `default_folds` folds by position."""
    return folds if len(np.unique(folds)) >= 2 else np.arange(len(folds)) % default_folds


def kfold_accuracy(
    distances: np.ndarray, same: np.ndarray, folds: np.ndarray
) -> tuple[float, float, list[float]]:
    """Mean and std of per-fold accuracy, each fold judged at the threshold learnt on the others."""
    labels = fold_labels(folds)
    accuracies, thresholds = [], []
    for fold in np.unique(labels):
        test = labels == fold
        threshold, _ = best_threshold(distances[~test], same[~test])
        thresholds.append(threshold)
        accuracies.append(accuracy_at(distances[test], same[test], threshold))
    return float(np.mean(accuracies)), float(np.std(accuracies)), thresholds


def tar_at_far(distances: np.ndarray, same: np.ndarray, far: float = 1e-3) -> float:
    """True accept rate at the strictest threshold whose false accept rate is still <= `far`."""
    fpr, tpr, _ = roc_curve(same, -distances)
    return float(tpr[fpr <= far].max())


def auc(distances: np.ndarray, same: np.ndarray) -> float:
    return float(roc_auc_score(same, -distances))


def threshold_sweep(
    distances: np.ndarray, same: np.ndarray, start: float, stop: float, step: float
) -> list[dict[str, float]]:
    """Accuracy, TAR and FAR at each threshold of the range (the report's threshold table)."""
    rows = []
    for threshold in np.arange(start, stop + step / 2, step):
        accepted = distances <= threshold
        rows.append(
            {
                "threshold": round(float(threshold), 4),
                "accuracy": float(np.mean(accepted == same)),
                "tar": float(accepted[same].mean()) if same.any() else float("nan"),
                "far": float(accepted[~same].mean()) if (~same).any() else float("nan"),
            }
        )
    return rows
