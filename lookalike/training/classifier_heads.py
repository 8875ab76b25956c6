"""Category heads trained on frozen backbone features: the linear probe and the report's MLP head.

The report's head (Dense 512 + BatchNorm + Dropout 0.5, twice, then softmax) is kept as
described so its grid can be rerun; softmax is folded into the cross-entropy loss in training
and applied by `predict_proba` at search time.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

HEAD_ARCHITECTURES = ("linear", "dense512x2")


def build_head(architecture: str, in_dim: int, num_classes: int) -> nn.Module:
    """A fresh head of `architecture` mapping `in_dim` features to `num_classes` logits."""
    if architecture == "linear":
        return nn.Linear(in_dim, num_classes)
    if architecture == "dense512x2":
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(2):
            layers += [nn.Linear(width, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Dropout(0.5)]
            width = 512
        return nn.Sequential(*layers, nn.Linear(width, num_classes))
    choices = ", ".join(HEAD_ARCHITECTURES)
    raise ValueError(f"unknown head architecture {architecture!r}; choose from {choices}")


@torch.no_grad()
def predict_proba(head: nn.Module, features: np.ndarray) -> np.ndarray:
    """Class probabilities for a batch of feature vectors (eval mode: no dropout, running BN stats)."""
    head.eval()
    logits = head(torch.as_tensor(np.asarray(features, dtype=np.float32)))
    return torch.softmax(logits, dim=1).numpy()
