"""Photos grouped by identity, for metric learning: a person (face folders) or a product.

Faces come as `<identity>/<image>` folders; a product catalog names the identity in its manifest
(`product_id` for instance retrieval, `category` for coarse similarity). Both end up as the
same `IdentitySet`, so one training and evaluation path serves faces and products.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.evaluation.face_pairs import IMAGE_SUFFIXES, Pair
from lookalike.products.catalog import read_catalog


@dataclass(frozen=True)
class IdentitySet:
    root: Path
    files: list[str]  # relative to root as pairs files name them (catalog items: absolute paths)
    labels: np.ndarray  # integer identity per file
    names: list[str]  # identity name per label

    @property
    def paths(self) -> list[Path]:
        return [self.root / f for f in self.files]


def _index(root: Path, files: list[str], identities: list[str]) -> IdentitySet:
    names = sorted(set(identities))
    number = {name: i for i, name in enumerate(names)}
    return IdentitySet(root, files, np.array([number[i] for i in identities], dtype=np.int64), names)


def from_folders(root: Path) -> IdentitySet:
    """Every image of `root/<identity>/`, sorted, labelled by its folder."""
    files = sorted(str(p.relative_to(root)) for p in root.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no <identity>/<image> photos under {root}")
    return _index(root, files, [Path(f).parent.name for f in files])


def from_catalog(catalog: Path, manifest: Path | None, column: str) -> IdentitySet:
    """A product catalog (the product engine's reader), labelled by `column`: product_id or category."""
    if column not in ("product_id", "category"):
        raise ValueError(f"identity column must be 'product_id' or 'category', got {column!r}")
    items = [item for item in read_catalog(catalog, manifest) if getattr(item, column)]
    if not items:
        raise ValueError(f"no catalog item of {catalog} has a {column}")
    return _index(catalog, [str(item.path) for item in items], [getattr(item, column) for item in items])


def trainable(identities: IdentitySet, exclude: set[int] = frozenset()) -> np.ndarray:
    """Indices of photos whose identity has 2+ photos (a triplet needs a positive) and is not excluded."""
    counts = Counter(identities.labels.tolist())
    keep = [(counts[label] >= 2 and label not in exclude) for label in identities.labels.tolist()]
    return np.flatnonzero(keep)


def disjoint_pairs(identities: IdentitySet, folds: int = 5, per_fold: int = 300, seed: int = 0) -> list[Pair]:
    """Matched and mismatched pairs in `folds` folds whose identities never meet across folds
    (as in LFW View 2), so a model trained on the other folds has never seen a fold's identities."""
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(identities.names)) % folds
    by_label: dict[int, list[str]] = {}
    for file, label in zip(identities.files, identities.labels.tolist(), strict=True):
        by_label.setdefault(label, []).append(file)
    pairs: list[Pair] = []
    for fold in range(folds):
        labels = [label for label in sorted(by_label) if fold_of[label] == fold]
        groups = [by_label[label] for label in labels if len(by_label[label]) >= 2]
        if not groups or len(labels) < 2:
            raise ValueError(f"fold {fold + 1} has too few identities: need several with 2+ photos")
        for _ in range(per_fold // 2):
            group = groups[rng.integers(len(groups))]
            first, second = rng.choice(len(group), 2, replace=False)
            pairs.append(Pair(fold + 1, True, group[first], group[second]))
        for _ in range(per_fold // 2):
            one, other = rng.choice(len(labels), 2, replace=False)
            pairs.append(Pair(fold + 1, False, *(str(rng.choice(by_label[labels[i]])) for i in (one, other))))
    return pairs
