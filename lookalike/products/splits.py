"""Deterministic splits, so a rerun of an experiment on the same catalog sees the same test set.

`split_items` cuts a catalog into two manifests (catalog / queries) without copying a single photo:
each category's items are sorted by path and spread evenly (with fraction 0.5 every other file goes
to the catalog), so the same folder gives the same split on any machine. `stratified_split` draws
seeded train / validation / test indices for the heads' training.
"""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lookalike.products.catalog import OPTIONAL_FIELDS, CatalogItem

MANIFEST_FIELDS = ("path", "category", *OPTIONAL_FIELDS)
SPLIT_SEED = 1234


def split_items(
    items: list[CatalogItem], fraction: float = 0.5
) -> tuple[list[CatalogItem], list[CatalogItem]]:
    """(catalog, queries): about `fraction` of each category in the catalog, evenly spaced."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    by_category: dict[str, list[CatalogItem]] = defaultdict(list)
    for item in items:
        by_category[item.category].append(item)
    catalog, queries = [], []
    for category in sorted(by_category):
        for i, item in enumerate(sorted(by_category[category], key=lambda it: str(it.path))):
            in_catalog = math.floor((i + 1) * fraction) > math.floor(i * fraction)
            (catalog if in_catalog else queries).append(item)
    return catalog, queries


def write_manifest(items: list[CatalogItem], csv_path: Path) -> None:
    """A manifest whose paths are relative to its own folder, so it keeps working if both move."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_FIELDS)
        for item in items:
            relative = os.path.relpath(item.path, csv_path.parent.resolve())
            writer.writerow([relative, item.category, *(getattr(item, name) for name in OPTIONAL_FIELDS)])


def stratified_split(
    labels: Sequence[int], val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / validation / test indices with every class in the same proportion in each part."""
    from sklearn.model_selection import train_test_split  # here: sklearn is slow to import

    labels = np.asarray(labels)
    indices = np.arange(len(labels))
    rest, test = train_test_split(indices, test_size=test_fraction, stratify=labels, random_state=seed)
    train, val = train_test_split(
        rest, test_size=val_fraction / (1.0 - test_fraction), stratify=labels[rest], random_state=seed
    )
    return np.sort(train), np.sort(val), np.sort(test)
