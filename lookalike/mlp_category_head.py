"""A trained classifier head as plain arrays, read by search exactly like the build-time head.

`train-head` trains torch heads; an index stores its category head as .npz arrays (no pickle, so
loading an index never runs code from a file). A linear head is written in the build-time head's
own format (`classes`, `coef`, `intercept`), so `CategoryHead.load` reads it unchanged. The report's
MLP head is written as a chain of affine layers with ReLU between them: BatchNorm (in eval mode)
is folded into the preceding Linear and Dropout is the identity at inference, so the arrays give
exactly the torch head's eval-mode output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lookalike.category_head import CategoryHead, ranking, softmax


def _affine_layers(head: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight [out, in], bias [out]) per Linear, with any following BatchNorm1d folded in."""
    modules = list(head) if isinstance(head, nn.Sequential) else [head]
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    for module in modules:
        if isinstance(module, nn.Linear):
            layers.append((module.weight.detach().double().numpy(), module.bias.detach().double().numpy()))
        elif isinstance(module, nn.BatchNorm1d):
            weight, bias = layers[-1]
            scale = (module.weight / torch.sqrt(module.running_var + module.eps)).detach().double().numpy()
            shift = module.bias.detach().double().numpy() - module.running_mean.double().numpy() * scale
            layers[-1] = (weight * scale[:, None], bias * scale + shift)
        elif not isinstance(module, (nn.ReLU, nn.Dropout)):
            raise ValueError(f"cannot export a head containing {type(module).__name__}")
    return [(w.astype(np.float32), b.astype(np.float32)) for w, b in layers]


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


def export_head(head: nn.Module, classes: list[str]) -> CategoryHead | MlpCategoryHead:
    """The head as arrays: the build-time format when it is a single linear layer."""
    layers = _affine_layers(head.eval())
    if len(layers) == 1:
        return CategoryHead(list(classes), *layers[0])
    return MlpCategoryHead(list(classes), layers)


def load_head(path: Path) -> CategoryHead | MlpCategoryHead:
    """Whichever head a head.npz holds (the hook search needs to use an installed MLP head)."""
    with np.load(path, allow_pickle=False) as data:
        is_mlp = "layer_count" in data.files
    return MlpCategoryHead.load(path) if is_mlp else CategoryHead.load(path)
