"""Triplet loss with in-batch negative mining, and the P identities x K images batches it needs.

Mining happens inside each batch (as in FaceNet and "In Defense of the Triplet Loss"), so a
batch must hold several images of each identity: `pk_batches` builds those. Selection is done on
detached distances; the loss is then taken on the live ones so gradients flow only through the
chosen triplets.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from lookalike.training.settings import MINING_MODES


def pairwise_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """Euclidean distance matrix with a gradient that stays finite on the zero diagonal."""
    squared = torch.cdist(embeddings, embeddings).pow(2)
    return torch.sqrt(squared.clamp_min(1e-12))


def select_triplets(
    distances: torch.Tensor, labels: torch.Tensor, mining: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(anchor, positive, negative) index triples chosen from one batch's distance matrix.

    hard (batch-hard): per anchor, its farthest positive and its closest negative.
    semi-hard: per (anchor, positive) pair, the closest negative that is still farther than the
    positive; where none is, the farthest negative (the least violating one, as TF-Addons does).
    """
    if mining not in MINING_MODES:
        raise ValueError(f"mining must be one of {MINING_MODES}, got {mining!r}")
    d = distances.detach()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive = same & ~eye
    negative = ~same
    inf = torch.tensor(float("inf"), device=d.device)
    if mining == "hard":
        anchors = torch.nonzero(positive.any(1) & negative.any(1)).flatten()
        positives = torch.where(positive, d, -inf)[anchors].argmax(1)
        negatives = torch.where(negative, d, inf)[anchors].argmin(1)
        return anchors, positives, negatives
    anchors, positives = torch.nonzero(positive & negative.any(1, keepdim=True), as_tuple=True)
    d_an = d[anchors]  # [pairs, batch]
    d_ap = d[anchors, positives][:, None]
    neg = negative[anchors]
    beyond = neg & (d_an > d_ap)
    closest_beyond = torch.where(beyond, d_an, inf).argmin(1)
    farthest = torch.where(neg, d_an, -inf).argmax(1)
    negatives = torch.where(beyond.any(1), closest_beyond, farthest)
    return anchors, positives, negatives


def triplet_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, mining: str = "hard", margin: float = 0.5
) -> tuple[torch.Tensor, float]:
    """Mean hinge `max(0, d(a,p) - d(a,n) + margin)` over mined triplets, and the share still active."""
    distances = pairwise_distances(embeddings)
    a, p, n = select_triplets(distances, labels, mining)
    if len(a) == 0:
        return embeddings.sum() * 0.0, 0.0
    hinge = torch.relu(distances[a, p] - distances[a, n] + margin)
    return hinge.mean(), float((hinge > 0).float().mean())


def pk_batches(
    labels: np.ndarray, identities: int, per_identity: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """One epoch of index batches: `identities` identities, up to `per_identity` images of each.

    Only identities with 2+ images take part (a lone image can never be an anchor with a positive);
    every such identity appears once per epoch, in a random order.
    """
    members: dict[int, np.ndarray] = {}
    for label in np.unique(labels):
        found = np.flatnonzero(labels == label)
        if len(found) >= 2:
            members[int(label)] = found
    order = rng.permutation(list(members))
    for start in range(0, len(order), identities):
        chosen = order[start : start + identities]
        if len(chosen) < 2:
            break  # no negatives in a one-identity batch
        yield np.concatenate(
            [rng.choice(members[c], size=min(per_identity, len(members[c])), replace=False) for c in chosen]
        )
