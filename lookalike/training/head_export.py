"""Export a trained torch head as the arrays an index stores (`lookalike.products.mlp_head`).

A linear head is written in the build-time head's own format (`classes`, `coef`, `intercept`), so
`CategoryHead.load` reads it unchanged. An MLP head becomes a chain of affine layers: BatchNorm (in
eval mode) is folded into the preceding Linear and Dropout is the identity at inference.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lookalike.products.heads import CategoryHead
from lookalike.products.mlp_head import MlpCategoryHead


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


def export_head(head: nn.Module, classes: list[str]) -> CategoryHead | MlpCategoryHead:
    """The head as arrays: the build-time format when it is a single linear layer."""
    layers = _affine_layers(head.eval())
    if len(layers) == 1:
        return CategoryHead(list(classes), *layers[0])
    return MlpCategoryHead(list(classes), layers)
