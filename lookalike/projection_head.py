"""The report's embedding head (Linear -> 128, L2-normalised, scaled by alpha) trained with triplets.

It sits on frozen backbone features, so training needs only the cached feature arrays. The
weights start orthogonal: a norm-preserving projection of the backbone's unit vectors, i.e. the
untrained head already ranks pairs about as the frozen features do, and training starts from that
baseline rather than from noise. A checkpoint carries the backbone's name, so the model zoo
can rebuild backbone + head from the file alone (`model_zoo/projected.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lookalike.torch_threads import torch_threads
from lookalike.triplet import pk_batches, triplet_loss

CHECKPOINT_FORMAT = "lookalike.projection/1"


class ProjectionHead(nn.Module):
    def __init__(self, in_dim: int, out_dim: int = 128, alpha: float = 10.0) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        nn.init.orthogonal_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.alpha = alpha

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.alpha * nn.functional.normalize(self.linear(features), dim=1)

    @torch.no_grad()
    def project(self, features: np.ndarray) -> np.ndarray:
        """Numpy in, numpy out, in eval mode: what search and verification call."""
        self.eval()
        return self(torch.as_tensor(np.asarray(features, dtype=np.float32))).numpy()


@dataclass
class TripletConfig:
    mining: str = "semi-hard"
    margin: float = 0.5
    out_dim: int = 128
    alpha: float = 10.0
    epochs: int = 40
    identities_per_batch: int = 32
    images_per_identity: int = 4
    lr: float = 1e-3
    lr_step: int = 15  # epochs between learning-rate decays
    lr_gamma: float = 0.3
    seed: int = 0


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


def save_checkpoint(head: ProjectionHead, path: Path, backbone: dict, metrics: dict | None = None) -> Path:
    """`backbone` says how to recompute the input features: {"kind": "face"|"product", "name": ...}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "backbone": dict(backbone),
            "in_dim": head.linear.in_features,
            "out_dim": head.linear.out_features,
            "alpha": head.alpha,
            "state_dict": head.state_dict(),
            "metrics": metrics or {},
        },
        path,
    )
    return path


def load_checkpoint(path: str | Path) -> tuple[ProjectionHead, dict]:
    """The head (eval mode) and the checkpoint's metadata; refuses files of another format."""
    checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a lookalike projection checkpoint ({CHECKPOINT_FORMAT})")
    head = ProjectionHead(checkpoint["in_dim"], checkpoint["out_dim"], checkpoint["alpha"])
    head.load_state_dict(checkpoint["state_dict"])
    head.eval()
    return head, checkpoint
