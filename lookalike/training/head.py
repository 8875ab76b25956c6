"""`train-head`: the report's classifier grid on a catalog, its tables and plots, and installing the winner.

The backbone stays frozen: the catalog is embedded once through the product engine (and its cache,
so a catalog already indexed costs nothing), and every head trains on those vectors. The same split
also scores the build-time head (logistic regression, `CategoryHead.fit`), so the grid's winner is
compared with what the index would use without it, on the same test photos.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lookalike.evaluation.report import per_class_rows, plot_confusion, plot_curves, write_table
from lookalike.products.catalog import read_catalog
from lookalike.products.embedding import embed_catalog
from lookalike.products.heads import HELD_OUT_FRACTION, CategoryHead
from lookalike.products.index import locate
from lookalike.products.splits import stratified_split
from lookalike.training.classifier_heads import predict_proba
from lookalike.training.head_export import export_head
from lookalike.training.head_grid import FeatureSplits, VariantResult, best_variant, refit, run_grid
from lookalike.training.head_install import index_manifest, install_head
from model_zoo.product_embedders import DEFAULT_PRODUCT_MODEL, ProductEmbedder, create_embedder

VAL_FRACTION = 0.15


def best_per_architecture(results: Sequence[VariantResult]) -> list[VariantResult]:
    """The best-validation variant of each architecture, in the order they were trained."""
    architectures = dict.fromkeys(r.architecture for r in results)
    return [best_variant([r for r in results if r.architecture == a]) for a in architectures]


def refit_winner(splits: FeatureSplits, best: VariantResult) -> VariantResult:
    """The head to install: the winner's recipe refit on train + validation (`head_grid.refit`)."""
    head = refit(splits, best)
    x_test, y_test = splits.test
    x_seen = np.concatenate([splits.train[0], splits.val[0]])
    y_seen = np.concatenate([splits.train[1], splits.val[1]])
    return VariantResult(
        architecture=f"{best.architecture}, refit on train+val (what --install installs)",
        optimizer=best.optimizer,
        lr=best.lr,
        stop_epoch=best.best_epoch,
        best_epoch=best.best_epoch,
        train_acc=float(np.mean(predict_proba(head, x_seen).argmax(1) == y_seen)),
        val_acc=float("nan"),  # validation photos are in its training data
        test_acc=float(np.mean(predict_proba(head, x_test).argmax(1) == y_test)),
        history={},
        head=head,
    )


def write_report(
    results: Sequence[VariantResult],
    splits: FeatureSplits,
    classes: list[str],
    out_dir: Path,
    baseline: float,
    installed: VariantResult,
) -> str:
    """Grid and best-per-architecture tables; per-class table and confusion matrix of the head to
    install; training curves of every variant. Returns the tables as Markdown."""
    text = write_table([r.row() for r in results], out_dir, "grid", "Grid (frozen backbone, cached features)")
    rows = [r.row() for r in best_per_architecture(results)]
    rows.append(installed.row())
    blank = dict.fromkeys(rows[0], "")
    best_test = max(r.row()["test_acc"] for r in results)
    rows.append(
        {**blank, "architecture": "best test accuracy of any variant (picked on test)", "test_acc": best_test}
    )
    baseline_row = {"architecture": "logistic regression (build-time head, fit on train+val)"}
    rows.append({**blank, **baseline_row, "test_acc": round(baseline, 4)})
    title = "Best variant per architecture (chosen by val acc) and the build-time head, same test photos"
    text += "\n" + write_table(rows, out_dir, "best_per_architecture", title)
    x_test, y_test = splits.test
    predicted = predict_proba(installed.head, x_test).argmax(1)
    title = f"Per-class test scores: {installed.name}"
    text += "\n" + write_table(per_class_rows(y_test, predicted, classes), out_dir, "per_class", title)
    plot_confusion(y_test, predicted, classes, out_dir / "confusion.png")
    plot_curves({r.name: r.history for r in results}, out_dir / "curves.png")
    return text


def train_head(
    catalog: Path,
    out_dir: Path,
    *,
    model: str | None = None,
    embedder: ProductEmbedder | None = None,
    architectures: Sequence[str] = ("linear", "dense512x2"),
    max_epochs: int = 50,
    patience: int = 5,
    install: Path | None = None,
    force: bool = False,
    finetune_device: str | None = None,
) -> dict[str, object]:
    """Embed (cached), split, run the grid, write the report; with `install`, put the winner in the index.

    The embedder is `embedder`, else `model`, else the one `install`'s index was built with (so the
    head fits its features), else the product engine's default. The grid's head replaces the index's
    only if it scores at least as well on the same test photos, or with `force`. With `finetune_device`,
    the best architecture is also trained with its backbone (`lookalike.training.finetune`) and reported.
    """
    start = time.perf_counter()
    if embedder is None:
        if model is None and install is not None:
            embedder = create_embedder(**index_manifest(install).embedder_config(locate(Path(install))))
        else:
            embedder = create_embedder(model or DEFAULT_PRODUCT_MODEL)
    embedded = embed_catalog(read_catalog(catalog), embedder, show_bar=False)
    classes = sorted({item.category for item in embedded.items})
    labels = np.array([classes.index(item.category) for item in embedded.items])
    # the test part is the build-time head's held-out part (same fraction and seed), so the two heads
    # are scored on the same photos
    parts = stratified_split(labels, VAL_FRACTION, HELD_OUT_FRACTION)
    splits = FeatureSplits(*((embedded.vectors[i], labels[i]) for i in parts))
    feature_seconds = time.perf_counter() - start

    train_idx, val_idx, test_idx = parts
    seen = np.concatenate([train_idx, val_idx])  # what the build-time head trains on when measured
    build_time = CategoryHead.fit(embedded.vectors[seen], [classes[i] for i in labels[seen]])
    predicted = build_time.predict_proba(embedded.vectors[test_idx]).argmax(1)
    baseline = float(np.mean(predicted == labels[test_idx]))

    results = run_grid(splits, architectures, max_epochs=max_epochs, patience=patience)
    out_dir.mkdir(parents=True, exist_ok=True)
    best = best_variant(results)
    if finetune_device is not None:
        from lookalike.training.finetune import finetune

        paths = [item.path for item in embedded.items]
        tuned = finetune(paths, labels, parts, embedder, best.architecture, finetune_device)
        torch.save(tuned.head.backbone.state_dict(), out_dir / "finetuned_backbone.pt")
        results.append(tuned)
    final = refit_winner(splits, best)
    report = write_report(results, splits, classes, out_dir, baseline, final)
    export_head(final.head, classes).save(out_dir / "head.npz")
    summary = {
        "catalog": str(catalog),
        "model": embedder.config,
        "photos": len(embedded.items),
        "classes": len(classes),
        "split": {"train": len(parts[0]), "val": len(parts[1]), "test": len(parts[2])},
        "best": best.row(),
        "installed_head": final.row(),
        "best_per_architecture": [r.row() for r in best_per_architecture(results)],
        "best_test_acc_any_variant": max(r.row()["test_acc"] for r in results),
        "baseline_test_acc": round(baseline, 4),
        "feature_seconds": round(feature_seconds, 1),
        "seconds": round(time.perf_counter() - start, 1),
        "report": report,
    }
    if install is not None and (force or final.test_acc >= baseline):
        summary["installed"] = install_head(out_dir / "head.npz", install, embedder.config, final.row())
    elif install is not None:
        summary["installed"] = None  # the build-time head scores higher on the same test photos: kept
    record = {key: value for key, value in summary.items() if key != "report"}
    (out_dir / "summary.json").write_text(json.dumps(record, indent=2))
    return summary
