"""Write an experiment's results the way the report shows them: Markdown + CSV tables and PNG plots.

Plots use matplotlib's Agg backend so training runs on servers without a display.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 and value != 0 else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, object]]) -> str:
    """A GitHub Markdown table of `rows` (dicts sharing the first row's keys)."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def show(text: str, out: Path | None = None) -> None:
    """Print a benchmark's text and, given `out`, write it there too (its folder made: bench/out/ is git-ignored,
    so absent in a clone)."""
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


def write_table(rows: Sequence[Mapping[str, object]], out_dir: Path, name: str, title: str = "") -> str:
    """Write `name`.md and `name`.csv in `out_dir`; returns the Markdown text."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = (f"## {title}\n\n" if title else "") + markdown_table(rows) + "\n"
    (out_dir / f"{name}.md").write_text(text)
    with open(out_dir / f"{name}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return text


def per_class_rows(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> list[dict]:
    """Precision / recall / F1 / support per class, then the macro average."""
    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    rows = [
        {
            "class": name,
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "f1": round(float(f), 4),
            "support": int(s),
        }
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)
    ]
    rows.append(
        {
            "class": "macro avg",
            "precision": round(float(precision.mean()), 4),
            "recall": round(float(recall.mean()), 4),
            "f1": round(float(f1.mean()), 4),
            "support": int(support.sum()),
        }
    )
    return rows


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Row-normalised confusion matrix, so small classes are as readable as large ones."""
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(class_names)))).astype(float)
    matrix /= np.maximum(matrix.sum(axis=1, keepdims=True), 1.0)
    size = max(6.0, 0.35 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=8)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], path: Path) -> None:
    """One panel per variant: train/val loss (left axis) and accuracy (right axis) per epoch."""
    columns = 3
    rows = math.ceil(len(histories) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.2 * rows), squeeze=False)
    handles: list = []
    for ax, (name, history) in zip(axes.flat, histories.items(), strict=False):
        epochs = range(1, len(history["val_loss"]) + 1)
        ax.plot(epochs, history["train_loss"], "C0-", label="train loss")
        ax.plot(epochs, history["val_loss"], "C0--", label="val loss")
        acc = ax.twinx()
        acc.plot(epochs, history["train_acc"], "C1-", label="train acc")
        acc.plot(epochs, history["val_acc"], "C1--", label="val acc")
        acc.set_ylim(0, 1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        handles = handles or [*ax.get_lines(), *acc.get_lines()]
    for ax in list(axes.flat)[len(histories) :]:
        ax.axis("off")
    fig.legend(handles, [h.get_label() for h in handles], loc="lower right", ncols=4)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """ROC curves of one or more models on the same pairs (label -> (distances, same)), on a log FAR
    axis, where verification systems are compared; "before" and "after" training read off one plot."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(6, 5))
    for label, (dist, same) in curves.items():
        fpr, tpr, _ = roc_curve(same, -dist)
        ax.plot(np.maximum(fpr, 1e-4), tpr, label=f"{label} (AUC {roc_auc_score(same, -dist):.4f})")
    ax.set(
        xscale="log", xlim=(1e-4, 1), ylim=(0, 1.01), xlabel="false accept rate", ylabel="true accept rate"
    )
    ax.set_title(f"ROC on {len(next(iter(curves.values()))[1])} pairs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
