"""The report's optimiser x learning-rate grid, rerun on cached features so it fits a 2-core CPU.

Each variant trains until its validation loss has not improved for `patience` epochs (or
`max_epochs`), and keeps the weights of its best-validation-accuracy epoch: the stop rule and
the checkpoint rule are deliberately different, as in the report (EarlyStopping on val_loss,
ModelCheckpoint on val_accuracy). The winner is chosen on validation accuracy only; test
accuracy is read once per variant, never used to choose.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from lookalike.training.classifier_heads import build_head
from lookalike.training.threads import torch_threads

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "rmsprop": torch.optim.RMSprop,
}
LEARNING_RATES = (1e-2, 1e-3, 1e-4)


@dataclass(frozen=True)
class FeatureSplits:
    """Features and integer labels of the train / validation / test parts."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]

    @property
    def in_dim(self) -> int:
        return int(self.train[0].shape[1])

    @property
    def num_classes(self) -> int:
        return int(max(part[1].max() for part in (self.train, self.val, self.test))) + 1


@dataclass
class VariantResult:
    architecture: str
    optimizer: str
    lr: float
    stop_epoch: int
    best_epoch: int
    train_acc: float
    val_acc: float
    test_acc: float
    history: dict[str, list[float]] = field(repr=False)
    head: nn.Module = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.architecture}/{self.optimizer}/lr={self.lr:g}"

    def row(self) -> dict[str, object]:
        """The report table's columns."""
        return {
            "architecture": self.architecture,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "stop_epoch": self.stop_epoch,
            "best_epoch": self.best_epoch,
            "train_acc": round(self.train_acc, 4),
            "val_acc": round(self.val_acc, 4),
            "test_acc": round(self.test_acc, 4),
        }


def _tensors(part: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(part[0], dtype=torch.float32), torch.as_tensor(part[1], dtype=torch.long)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in batches:
        logits = model(x)
        total_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    return total_loss / seen, correct / seen


def train_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[float, float]:
    """One pass of cross-entropy training; returns the epoch's mean loss and accuracy."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in batches:
        if len(y) < 2:
            continue  # BatchNorm cannot normalise a batch of one
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    return total_loss / seen, correct / seen


def _shuffled(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    order = torch.randperm(len(y), generator=generator)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        yield x[batch], y[batch]


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    val_batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    max_epochs: int,
    patience: int,
) -> tuple[dict[str, list[float]], int, int]:
    """The report's training rules for any classifier: stop when validation loss has not improved for
    `patience` epochs, restore the best-validation-accuracy weights. Returns (history, stop, best epoch)."""
    history: dict[str, list[float]] = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}
    best_state, best_epoch, best_val_acc = None, 0, -1.0
    best_val_loss, stale = float("inf"), 0
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        train_loss, train_acc = train_epoch(model, optimizer, train_batches())
        val_loss, val_acc = evaluate(model, val_batches())
        for key, value in zip(history, (train_loss, train_acc, val_loss, val_acc), strict=True):
            history[key].append(value)
        if val_acc > best_val_acc:
            best_state, best_epoch, best_val_acc = copy.deepcopy(model.state_dict()), epoch, val_acc
        if val_loss < best_val_loss:
            best_val_loss, stale = val_loss, 0
        else:
            stale += 1
            if stale >= patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return history, epoch, best_epoch


def train_variant(
    splits: FeatureSplits,
    architecture: str,
    optimizer: str,
    lr: float,
    max_epochs: int = 50,
    patience: int = 5,
    batch_size: int = 32,  # Keras' default, which the report's runs used
    seed: int = 0,
) -> VariantResult:
    """Train one head on cached features with `fit`'s stop and checkpoint rules."""
    torch.manual_seed(seed)
    head = build_head(architecture, splits.in_dim, splits.num_classes)
    x_train, y_train = _tensors(splits.train)
    generator = torch.Generator().manual_seed(seed)

    def train_batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return _shuffled(x_train, y_train, batch_size, generator)

    def whole(part: tuple[np.ndarray, np.ndarray]) -> Callable[[], list]:
        return lambda: [_tensors(part)]

    opt = OPTIMIZERS[optimizer](head.parameters(), lr=lr)
    history, stop_epoch, best_epoch = fit(head, opt, train_batches, whole(splits.val), max_epochs, patience)
    return VariantResult(
        architecture=architecture,
        optimizer=optimizer,
        lr=lr,
        stop_epoch=stop_epoch,
        best_epoch=best_epoch,
        train_acc=evaluate(head, whole(splits.train)())[1],
        val_acc=max(history["val_acc"]),
        test_acc=evaluate(head, whole(splits.test)())[1],
        history=history,
        head=head,
    )


def run_grid(
    splits: FeatureSplits,
    architectures: Sequence[str],
    optimizers: Sequence[str] = tuple(OPTIMIZERS),
    learning_rates: Sequence[float] = LEARNING_RATES,
    progress: Callable[[VariantResult], None] | None = None,
    **train_kwargs,
) -> list[VariantResult]:
    """Every architecture x optimiser x learning rate, in a fixed order (same seed for each)."""
    results = []
    with torch_threads(1):
        for architecture, optimizer, lr in itertools.product(architectures, optimizers, learning_rates):
            result = train_variant(splits, architecture, optimizer, lr, **train_kwargs)
            if progress:
                progress(result)
            results.append(result)
    return results


def best_variant(results: Sequence[VariantResult]) -> VariantResult:
    """Highest validation accuracy; ties go to the earlier checkpoint (the cheaper model to reach)."""
    return max(results, key=lambda r: (r.val_acc, -r.best_epoch))


def refit(splits: FeatureSplits, winner: VariantResult, batch_size: int = 32, seed: int = 0) -> nn.Module:
    """The winner's recipe (architecture, optimiser, rate, epochs to its checkpoint) retrained on train +
    validation: validation photos were needed only to choose the recipe, and the build-time head it
    competes with learns from them too."""
    torch.manual_seed(seed)
    x = torch.as_tensor(np.concatenate([splits.train[0], splits.val[0]]), dtype=torch.float32)
    y = torch.as_tensor(np.concatenate([splits.train[1], splits.val[1]]), dtype=torch.long)
    head = build_head(winner.architecture, splits.in_dim, splits.num_classes)
    optimizer = OPTIMIZERS[winner.optimizer](head.parameters(), lr=winner.lr)
    generator = torch.Generator().manual_seed(seed)
    with torch_threads(1):
        for _ in range(winner.best_epoch):
            train_epoch(head, optimizer, _shuffled(x, y, batch_size, generator))
    return head.eval()
