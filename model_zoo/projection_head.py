"""The report's embedding head (Linear -> 128, L2-normalised, scaled by alpha) and its checkpoint format.

The weights start orthogonal: a norm-preserving projection of the backbone's unit vectors, so an
untrained head already ranks pairs about as the frozen features do. A checkpoint carries the
backbone's name, so the model zoo can rebuild backbone + head from the file alone
(`model_zoo/projected.py`); the training loop lives in `lookalike.training.projection`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

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
