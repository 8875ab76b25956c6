"""Fold each inference-mode batch norm into the convolution before it, for frozen CPU embedders.

In eval mode a batch norm is a fixed per-channel scale and shift, which the convolution feeding it can
absorb; the norm then becomes its activation alone (timm's `BatchNormAct2d`) or nothing. On our 2-core
CPU this made an EfficientNet-Lite1 query faster with embeddings equal to float rounding
(docs/experiments/inference-runtimes.md). A norm is folded only where it directly follows a convolution among its
siblings (the order timm's CNNs declare them in), and the folded network is checked against the
original on a probe batch: a model whose forward uses another order keeps its norms.
"""

from __future__ import annotations

import copy

import torch
from timm.layers import BatchNormAct2d
from torch import nn

TOLERANCE = 1e-4


def _fold_into(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    conv.bias = nn.Parameter(norm.bias + (bias - norm.running_mean) * scale)


def _fold_all(model: nn.Module) -> int:
    folded = 0
    for parent in list(model.modules()):
        previous = None
        for name, child in list(parent.named_children()):
            foldable = isinstance(child, nn.BatchNorm2d) and child.track_running_stats and child.affine
            if foldable and isinstance(previous, nn.Conv2d) and previous.out_channels == child.num_features:
                _fold_into(previous, child)
                rest = nn.Sequential(child.drop, child.act) if isinstance(child, BatchNormAct2d) else nn.Identity()
                setattr(parent, name, rest)
                folded += 1
            previous = child
    return folded


@torch.no_grad()
def fold_batchnorm(model: nn.Module, probe: torch.Tensor) -> nn.Module:
    """`model` (eval mode) with its norms folded, or `model` itself when folding would change its output."""
    folded = copy.deepcopy(model).eval()
    if _fold_all(folded) == 0:
        return model
    expected, got = model(probe), folded(probe)
    return folded if torch.allclose(expected, got, atol=TOLERANCE, rtol=TOLERANCE) else model
