"""Training settings (triplet head, backbone tuning), kept free of torch so the CLI can show them as
defaults in `--help` without loading the training stack."""

from __future__ import annotations

from dataclasses import dataclass

from lookalike.products.tuning_policy import TuneConfig  # the build tunes too; training reuses its settings

__all__ = ["MINING_MODES", "TripletConfig", "TuneConfig"]
MINING_MODES = ("hard", "semi-hard")


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
