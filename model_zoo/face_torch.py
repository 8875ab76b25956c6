"""The face models that run in torch: dlib's ResNet (ported, `model_zoo.dlib_resnet`), facenet-pytorch's
InceptionResnetV1 and the seed report's ResNet-50 triplet network. Their cfgs are registered in
`model_zoo.face_embedders`, which imports this module when one of them is built."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from model_zoo.dlib_resnet import DlibFaceNet, DlibFormatError
from model_zoo.face_embedders import ChipNetwork, FaceModel
from model_zoo.registry import FaceCfg, Weights, WeightsUnavailableError
from model_zoo.weights import load_by_name, resolve_weights


class DlibResNet(ChipNetwork):
    """dlib's network run in torch (`model_zoo.dlib_resnet`); `flip` averages each chip with its mirror image."""

    def __init__(self, name: str, cfg: FaceCfg, weights: Weights = None) -> None:
        super().__init__(name, cfg)
        path = resolve_weights(name, cfg.weights_source, cfg.weights_file, weights)
        try:
            self._net = DlibFaceNet(path)
        except (OSError, DlibFormatError) as exc:
            raise WeightsUnavailableError(f"cannot load {name} weights from {path}: {exc}") from None

    def _forward(self, chips: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self._net(torch.from_numpy(np.ascontiguousarray(chips))).numpy()


class TorchFaceModel(FaceModel):
    """A torch module fed normalised box crops; subclasses build the module and load its weights."""

    def __init__(self, name: str, cfg: FaceCfg, module: nn.Module) -> None:
        super().__init__(name, cfg)
        self._module = module.eval()
        self._mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
        self._std = torch.tensor(cfg.std).view(1, 3, 1, 1)

    def embed_faces(self, aligned: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        if not aligned:
            return np.zeros((0, self.dim), np.float32)
        size = (self.input_size, self.input_size)
        pixels = np.stack(
            [np.asarray(Image.fromarray(np.asarray(c)).convert("RGB").resize(size)) for c in aligned]
        )
        batch = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(255.0)
        with torch.inference_mode():
            return self._module((batch - self._mean) / self._std).numpy().astype(np.float32)


class Facenet(TorchFaceModel):
    """InceptionResnetV1 built empty, then loaded from the hub cache or `weights` (never downloaded)."""

    def __init__(self, name: str, cfg: FaceCfg, weights: Weights = None) -> None:
        from facenet_pytorch import InceptionResnetV1

        path = resolve_weights(name, cfg.weights_source, cfg.weights_file, weights)
        module = InceptionResnetV1(pretrained=None, classify=False)
        load_by_name(module, name, path, drop_prefix="logits.")  # the classifier head is unused
        super().__init__(name, cfg, module)


class SeedTripletNet(nn.Module):
    """The seed report's network: ResNet-50 body, flatten 2048x7x7, Linear to 128, L2-normalise, x alpha."""

    def __init__(self, dim: int = 128, alpha: float = 10.0) -> None:
        from torchvision.models import resnet50

        super().__init__()
        self.body = nn.Sequential(*list(resnet50(weights=None).children())[:-2])
        self.embed = nn.Linear(2048 * 7 * 7, dim)
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * F.normalize(self.embed(torch.flatten(self.body(x), 1)), dim=1)


class SeedResNet50Triplet(TorchFaceModel):
    def __init__(self, name: str, cfg: FaceCfg, weights: Weights = None) -> None:
        path = resolve_weights(name, cfg.weights_source, cfg.weights_file, weights)
        module = SeedTripletNet(cfg.dim, cfg.alpha)
        load_by_name(module, name, path)
        super().__init__(name, cfg, module)
