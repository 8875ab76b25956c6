"""`train-head --finetune`: train the backbone too, on augmented photos (the report's full transfer learning).

Only worth it on a GPU (a CUDA device is required by the command; the function itself takes any
device so it is tested on CPU with tiny inputs). It uses the same split, head architecture and stop
and checkpoint rules as the frozen grid, so its row is comparable with the grid's. The tuned
backbone is saved in timm's layout, which `create_embedder(name, weights=PATH)` loads: rebuilding
the index with it is what would put it into search (the index's vectors come from the backbone).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from lookalike.images.loading import load_image
from lookalike.training.classifier_heads import build_head
from lookalike.training.head_grid import OPTIMIZERS, VariantResult, evaluate, fit
from model_zoo.product_embedders import ProductEmbedder


class _Photos(Dataset):
    def __init__(self, paths: Sequence[Path], labels: np.ndarray, transform: Callable) -> None:
        self.paths, self.labels, self.transform = list(paths), labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(load_image(self.paths[i])), int(self.labels[i])


class FinetuneNet(nn.Module):
    """Backbone pooled features, L2-normalised as in the index, then the classifier head."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)
        return self.head(nn.functional.normalize(features, dim=1))


def augmentation(embedder: ProductEmbedder) -> transforms.Compose:
    p = embedder.preprocess
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(p.size, scale=(0.6, 1.0)),
            transforms.RandomHorizontalFlip(),
            transforms.ColorJitter(0.2, 0.2, 0.2),
            transforms.ToTensor(),
            transforms.Normalize(p.mean, p.std),
        ]
    )


def finetune(
    paths: Sequence[Path],
    labels: np.ndarray,
    parts: tuple[np.ndarray, np.ndarray, np.ndarray],
    embedder: ProductEmbedder,
    architecture: str,
    device: str = "cuda",
    optimizer: str = "adam",
    lr: float = 1e-4,
    max_epochs: int = 15,
    patience: int = 5,
    batch_size: int = 32,
    workers: int = 2,
) -> VariantResult:
    """Fine-tune a copy of `embedder`'s backbone with a fresh head; returns the grid-style result."""

    def plain(image: Image.Image) -> torch.Tensor:  # evaluation sees photos as the index does
        return embedder.preprocess([image])[0]

    paths = list(paths)
    model = FinetuneNet(
        copy.deepcopy(embedder.model), build_head(architecture, embedder.dim, int(labels.max()) + 1)
    )
    model.to(device)

    def loader(part: np.ndarray, transform: Callable, shuffle: bool) -> Callable[[], list]:
        data = _Photos([paths[i] for i in part], labels[part], transform)
        batches = DataLoader(data, batch_size, shuffle=shuffle, num_workers=workers)
        return lambda: ((x.to(device), y.to(device)) for x, y in batches)

    train, val, test = parts
    opt = OPTIMIZERS[optimizer](model.parameters(), lr=lr)
    history, stop, best = fit(
        model,
        opt,
        loader(train, augmentation(embedder), True),
        loader(val, plain, False),
        max_epochs,
        patience,
    )
    return VariantResult(
        architecture=f"finetuned+{architecture}",
        optimizer=optimizer,
        lr=lr,
        stop_epoch=stop,
        best_epoch=best,
        train_acc=evaluate(model, loader(train, plain, False)())[1],
        val_acc=max(history["val_acc"]),
        test_acc=evaluate(model, loader(test, plain, False)())[1],
        history=history,
        head=model.cpu(),
    )
