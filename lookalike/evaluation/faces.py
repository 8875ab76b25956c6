"""Score a face model on verification pairs, with the report's protocol (see `face_metrics`).

Each image goes through the same pipeline as `verify` (detect -> choose a face -> align -> embed),
told that the photos are face-centred crops (`lookalike.faces.cached`); an image where no detector
finds a face is embedded from a centred box instead of being dropped, and counted in `no_face`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.evaluation.face_metrics import auc, best_threshold, kfold_accuracy, tar_at_far
from lookalike.evaluation.face_pairs import Pair, limit_pairs, load_pairs
from lookalike.evaluation.report import plot_roc
from lookalike.faces.cached import embed_files
from model_zoo.face_embedders import DEFAULT_FACE_MODEL, Weights, distances, get_face_cfg


@dataclass
class FaceEvaluation:
    summary: dict[str, Any]
    distances: np.ndarray
    same: np.ndarray

    def plot_roc(self, path: Path) -> None:
        s = self.summary
        plot_roc({f"{s['model']}  acc {s['accuracy']:.4f}": (self.distances, self.same)}, path)

def evaluate(
    faces_dir: Path,
    pairs_file: Path | None = None,
    model: str = DEFAULT_FACE_MODEL,
    weights: Weights = None,
    limit: int | None = None,
    processes: int | None = None,
) -> FaceEvaluation:
    pairs: list[Pair] = load_pairs(faces_dir, pairs_file)
    if limit is not None:
        pairs = limit_pairs(pairs, limit)
    images = sorted({p.image1 for p in pairs} | {p.image2 for p in pairs})
    paths = [Path(faces_dir) / image for image in images]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) named by the pairs are missing, e.g. {missing[0]}")
    cfg = get_face_cfg(model)
    files = embed_files(paths, model, weights, processes)
    row = {image: i for i, image in enumerate(images)}
    dist = distances(
        files.vectors[[row[p.image1] for p in pairs]], files.vectors[[row[p.image2] for p in pairs]], cfg.metric
    )
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    accuracy, accuracy_std, _ = kfold_accuracy(dist, same, folds)
    threshold, threshold_accuracy = best_threshold(dist, same)
    detectors = Counter(dict(zip(paths, files.detectors, strict=True)).values())
    summary = {
        "model": model,
        "pairs": len(pairs),
        "matched_pairs": int(same.sum()),
        "folds": len(np.unique(folds)),
        "accuracy": round(accuracy, 4),
        "accuracy_std": round(accuracy_std, 4),
        "auc": round(auc(dist, same), 4),
        "tar_at_far_1e-3": round(tar_at_far(dist, same, 1e-3), 4),
        "best_threshold": round(threshold, 4),
        "best_threshold_accuracy": round(threshold_accuracy, 4),
        "model_threshold": cfg.threshold,
        "no_face": {
            "images": detectors["hog"] + detectors["centre"],
            "found_by_hog_fallback": detectors["hog"],
            "embedded_from_centre_crop": detectors["centre"],
        },
        "images": len(paths),
        "images_embedded": files.embedded,
        "images_per_second": round(files.embedded / files.seconds, 2) if files.embedded else None,
    }
    return FaceEvaluation(summary, dist, same)
