"""Triplet training of the projection head on frozen backbone features.

Training needs only the cached feature arrays, which is what lets it run on a 2-core CPU in minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lookalike.training.settings import TripletConfig
from lookalike.training.threads import torch_threads
from lookalike.training.triplet import pk_batches, triplet_loss
from model_zoo.projection_head import ProjectionHead


@dataclass
class TrainedProjection:
    head: ProjectionHead
    loss_history: list[float] = field(default_factory=list)
    active_history: list[float] = field(default_factory=list)


def train_projection(features: np.ndarray, labels: np.ndarray, config: TripletConfig) -> TrainedProjection:
    """Adam with step decay over P x K batches; returns the head and the per-epoch mean loss."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    head = ProjectionHead(features.shape[1], config.out_dim, config.alpha)
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.long)
    result = TrainedProjection(head)
    with torch_threads(1):
        for _ in range(config.epochs):
            head.train()
            losses, active = [], []
            for batch in pk_batches(labels, config.identities_per_batch, config.images_per_identity, rng):
                loss, share = triplet_loss(head(x[batch]), y[batch], config.mining, config.margin)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                active.append(share)
            schedule.step()
            result.loss_history.append(float(np.mean(losses)) if losses else 0.0)
            result.active_history.append(float(np.mean(active)) if active else 0.0)
    head.eval()
    return result
