"""`train-embedding`: the report's triplet-loss embedding, as a head on cached frozen features.

Protocol: verification pairs come in identity-disjoint folds (LFW's pairs.txt, or folds drawn
here for a catalog). Each fold is scored by a head trained only on identities that appear in no
pair of that fold, so no evaluated person or product was seen in training; the frozen features are
scored on the same pairs. The checkpoint finally saved is trained on every identity with 2+ photos,
and carries the threshold found in that cross-validated evaluation.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lookalike.evaluation.face_metrics import auc, best_threshold, kfold_accuracy, tar_at_far
from lookalike.evaluation.face_pairs import Pair, load_pairs
from lookalike.evaluation.report import plot_roc, write_table
from lookalike.training.features import Backbone, backbone_features
from lookalike.training.identity_data import IdentitySet, disjoint_pairs, trainable
from lookalike.training.projection import train_projection
from lookalike.training.settings import TripletConfig
from model_zoo.face_embedders import distances
from model_zoo.projection_head import save_checkpoint


def evaluation_pairs(identities: IdentitySet, pairs_file: Path | None) -> list[Pair]:
    """The data's own pairs (a given file, or `pairs.txt` in the folder), else identity-disjoint folds."""
    if pairs_file is not None or (identities.root / "pairs.txt").is_file():
        return load_pairs(identities.root, pairs_file)
    return disjoint_pairs(identities)


def summarise(name: str, dist: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict[str, object]:
    """The face protocol's figures (the engine's metric functions), plus AUC fold by fold."""
    accuracy, accuracy_std, _ = kfold_accuracy(dist, same, folds)
    threshold, _ = best_threshold(dist, same)
    per_fold = [auc(dist[folds == f], same[folds == f]) for f in np.unique(folds)]
    return {
        "model": name,
        "pairs": len(same),
        "auc": round(auc(dist, same), 4),
        "fold_auc_mean": round(float(np.mean(per_fold)), 4),
        "fold_auc_std": round(float(np.std(per_fold)), 4),
        "accuracy": round(accuracy, 4),
        "accuracy_std": round(accuracy_std, 4),
        "tar_at_far_1e-3": round(tar_at_far(dist, same, 1e-3), 4),
        "threshold": round(threshold, 4),
    }


def cross_validated_distances(
    features: np.ndarray, identities: IdentitySet, pairs: list[Pair], config: TripletConfig
) -> tuple[np.ndarray, list[dict[str, object]]]:
    """Each pair's distance under the head trained without its fold's identities."""
    row = {file: i for i, file in enumerate(identities.files)}
    label = identities.labels
    first = np.array([row[p.image1] for p in pairs])
    second = np.array([row[p.image2] for p in pairs])
    folds = np.array([p.fold for p in pairs])
    dist = np.empty(len(pairs))
    log = []
    for fold in np.unique(folds):
        here = folds == fold
        held_out = set(label[first[here]].tolist()) | set(label[second[here]].tolist())
        train = trainable(identities, held_out)
        start = time.perf_counter()
        trained = train_projection(features[train], label[train], config)
        project = trained.head.project
        dist[here] = distances(project(features[first[here]]), project(features[second[here]]), "euclidean")
        log.append(
            {
                "fold": int(fold),
                "train_identities": len(np.unique(label[train])),
                "train_photos": len(train),
                "first_loss": round(trained.loss_history[0], 4),
                "last_loss": round(trained.loss_history[-1], 4),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(f"fold {fold}: {log[-1]}", file=sys.stderr, flush=True)
    return dist, log


def train_embedding(
    identities: IdentitySet,
    backbone: Backbone,
    out_dir: Path,
    config: TripletConfig,
    pairs_file: Path | None = None,
) -> dict[str, object]:
    """Frozen vs trained on the pairs, ROC plots, report tables, and the final checkpoint."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    features = backbone_features(identities.paths, backbone)
    feature_seconds = time.perf_counter() - start
    pairs = evaluation_pairs(identities, pairs_file)
    row = {file: i for i, file in enumerate(identities.files)}
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    frozen = distances(
        features[[row[p.image1] for p in pairs]], features[[row[p.image2] for p in pairs]], backbone.metric
    )
    trained, fold_log = cross_validated_distances(features, identities, pairs, config)
    before = summarise(f"{backbone.name} (frozen)", frozen, same, folds)
    after = summarise(f"{backbone.name} + triplet head ({config.mining})", trained, same, folds)
    plot_roc(
        {"frozen features": (frozen, same), f"triplet head ({config.mining})": (trained, same)},
        out_dir / "roc.png",
    )

    train = trainable(identities)
    final = train_projection(features[train], identities.labels[train], config)
    metrics = {"threshold": after["threshold"], "cv_auc": after["auc"], "frozen_auc": before["auc"]}
    checkpoint = save_checkpoint(final.head, out_dir / "projection.pt", backbone.spec(), metrics)
    result = {
        "backbone": backbone.spec(),
        "config": asdict(config),
        "photos": len(identities.files),
        "identities": len(identities.names),
        "trainable_identities": len(np.unique(identities.labels[train])),
        "feature_seconds": round(feature_seconds, 1),
        "frozen": before,
        "trained": after,
        "folds": fold_log,
        "final_loss": [round(v, 4) for v in final.loss_history],
        "checkpoint": str(checkpoint),
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_table([before, after], out_dir, "embedding_eval", "Frozen features vs triplet head (same pairs)")
    write_table(fold_log, out_dir, "embedding_folds", "Cross-validation folds")
    (out_dir / "embedding_result.json").write_text(json.dumps(result, indent=2))
    return result
