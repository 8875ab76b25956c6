"""A trained MLP classifier head as plain arrays, read by search exactly like the build-time head.

`train-head` trains torch heads; an index stores its category head as .npz arrays (no pickle, so
loading an index never runs code from a file, and search needs no torch). The report's MLP head is a
chain of affine layers with ReLU between them (`lookalike.training.head_export` folds BatchNorm and
drops Dropout, so the arrays give exactly the torch head's eval-mode output).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.products.heads import CategoryHead, ranking, softmax


@dataclass
class MlpCategoryHead:
    """Same interface as `CategoryHead` (classes, predict_proba, rank, save, load)."""

    classes: list[str]
    layers: list[tuple[np.ndarray, np.ndarray]]

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        hidden = np.atleast_2d(vectors).astype(np.float32)
        for i, (weight, bias) in enumerate(self.layers):
            hidden = hidden @ weight.T + bias
            if i < len(self.layers) - 1:
                hidden = np.maximum(hidden, 0.0)
        return softmax(hidden)

    def rank(self, vector: np.ndarray) -> list[tuple[str, float]]:
        return ranking(self.classes, self.predict_proba(vector)[0])

    def save(self, path: Path) -> None:
        arrays = {f"w{i}": weight for i, (weight, _) in enumerate(self.layers)}
        arrays.update({f"b{i}": bias for i, (_, bias) in enumerate(self.layers)})
        np.savez(path, classes=np.array(self.classes), layer_count=len(self.layers), **arrays)

    @classmethod
    def load(cls, path: Path) -> MlpCategoryHead:
        with np.load(path, allow_pickle=False) as data:
            count = int(data["layer_count"])
            layers = [(data[f"w{i}"], data[f"b{i}"]) for i in range(count)]
            return cls([str(c) for c in data["classes"]], layers)


def load_head(path: Path) -> CategoryHead | MlpCategoryHead:
    """Whichever head a head.npz holds (the hook search needs to use an installed MLP head)."""
    with np.load(path, allow_pickle=False) as data:
        is_mlp = "layer_count" in data.files
    return MlpCategoryHead.load(path) if is_mlp else CategoryHead.load(path)
