"""Training settings (triplet head, backbone tuning), kept free of torch so the CLI can show them as
defaults in `--help` without loading the training stack."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass
class TuneConfig:
    blocks: int = 2  # trailing stages trained (with the head convolution); the rest stay frozen
    epochs: int = 4
    lr: float = 1e-4
    proxy_lr: float = 1e-2  # proxies move faster than the pretrained weights (proxy-loss practice)
    temperature: float = 0.05
    batch_size: int = 32
    seed: int = 0
    crop: float = 0.7  # smallest side of a batch's random crop of the frozen maps, as a fraction (1: no crop)
