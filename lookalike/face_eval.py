"""Score a face model on verification pairs, with the report's protocol (see `face_metrics`).

Each image goes through the same pipeline as `verify` (detect -> choose a face -> align -> embed),
told that the photos are face-centred crops (LFW): the face nearest the centre is the labelled
person (LFW photos often hold a larger bystander; on folds 1-2 choosing the largest face instead cost
2.6 points of accuracy), and an image where no detector finds a face is embedded from a centred box
instead of being dropped, and counted in `no_face`.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.face_cache import EmbeddingCache, file_sha256
from lookalike.face_metrics import auc, best_threshold, kfold_accuracy, tar_at_far
from lookalike.face_pairs import Pair, limit_pairs, load_pairs
from lookalike.face_parallel import EmbedJob, ParallelFacePipeline
from lookalike.imageio import load_image
from model_zoo.face_embedders import DEFAULT_FACE_MODEL, Weights, distances, get_face_cfg

BATCH = 32  # images handed to the pipeline at once; also how often the cache is saved


@dataclass
class FaceEvaluation:
    summary: dict[str, Any]
    distances: np.ndarray
    same: np.ndarray


def embed_missing(
    paths: list[Path],
    hashes: list[str],
    cache: EmbeddingCache,
    model: str,
    weights: Weights,
    processes: int | None,
) -> tuple[int, float]:
    """Embed the images the cache lacks; returns how many and the seconds it took."""
    todo = [(p, h) for p, h in zip(paths, hashes, strict=True) if h not in cache]
    if not todo:
        return 0, 0.0
    start = time.perf_counter()
    with ParallelFacePipeline(model, weights, processes) as pipeline:
        for first in range(0, len(todo), BATCH):
            batch = todo[first : first + BATCH]
            jobs = [EmbedJob(load_image(path), str(path), centred=True) for path, _ in batch]
            for (_, sha), result in zip(batch, pipeline.run(jobs), strict=True):
                cache.put(sha, result.embedding, result.face.detector)
            cache.save()
            done = first + len(batch)
            rate = done / (time.perf_counter() - start)
            print(f"embedded {done}/{len(todo)} images ({rate:.1f}/s)", file=sys.stderr, flush=True)
    return len(todo), time.perf_counter() - start


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
    cache = EmbeddingCache(model, cfg, weights)
    hashes = [file_sha256(p) for p in paths]
    embedded, seconds = embed_missing(paths, hashes, cache, model, weights, processes)

    row = {image: i for i, image in enumerate(images)}
    vectors = np.stack([cache.get(h)[0] for h in hashes])
    dist = distances(
        vectors[[row[p.image1] for p in pairs]], vectors[[row[p.image2] for p in pairs]], cfg["metric"]
    )
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    accuracy, accuracy_std, _ = kfold_accuracy(dist, same, folds)
    threshold, threshold_accuracy = best_threshold(dist, same)
    detectors = Counter(cache.get(h)[1] for h in set(hashes))
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
        "model_threshold": cfg["threshold"],
        "no_face": {
            "images": detectors["hog"] + detectors["centre"],
            "found_by_hog_fallback": detectors["hog"],
            "embedded_from_centre_crop": detectors["centre"],
        },
        "images": len(set(hashes)),
        "images_embedded": embedded,
        "images_per_second": round(embedded / seconds, 2) if embedded else None,
    }
    return FaceEvaluation(summary, dist, same)


def plot_roc(evaluation: FaceEvaluation, path: Path) -> None:
    """ROC curve (log FAR axis, where verification systems are compared) written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(evaluation.same, -evaluation.distances)
    s = evaluation.summary
    figure, axes = plt.subplots(figsize=(5, 4.5))
    axes.plot(np.maximum(fpr, 1e-4), tpr, label=f"{s['model']}  AUC {s['auc']:.4f}  acc {s['accuracy']:.4f}")
    axes.set(
        xscale="log", xlim=(1e-4, 1), ylim=(0, 1.01), xlabel="false accept rate", ylabel="true accept rate"
    )
    axes.set_title(f"ROC on {s['pairs']} pairs")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
