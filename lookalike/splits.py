"""Deterministic splits, so a rerun of an experiment on the same catalog sees the same test set."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLIT_SEED = 1234


def stratified_split(
    labels: Sequence[int], val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / validation / test indices with every class in the same proportion in each part."""
    from sklearn.model_selection import train_test_split  # here: importing sklearn costs ~2 s

    labels = np.asarray(labels)
    indices = np.arange(len(labels))
    rest, test = train_test_split(indices, test_size=test_fraction, stratify=labels, random_state=seed)
    train, val = train_test_split(
        rest, test_size=val_fraction / (1.0 - test_fraction), stratify=labels[rest], random_state=seed
    )
    return np.sort(train), np.sort(val), np.sort(test)
