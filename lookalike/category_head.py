"""The category head: multinomial logistic regression on catalog embeddings, trained at build time.

It ranks categories for a query so the search can be narrowed to the likeliest one. Accuracy is
measured on a stratified held-out part of the catalog, then the head is refit on everything.
Stored as plain arrays (.npz, no pickle), so loading an index never runs code from a file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from lookalike.splits import SPLIT_SEED

#: Inverse regularisation, chosen by 5-fold CV on the catalog half of shared/data/products (C in 3..1000).
DEFAULT_C = 30.0
HELD_OUT_FRACTION = 0.2


@dataclass
class CategoryHead:
    classes: list[str]
    coef: np.ndarray  # [classes, dim]
    intercept: np.ndarray  # [classes]

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: list[str], c: float = DEFAULT_C) -> CategoryHead:
        classes = sorted(set(labels))
        if len(classes) == 1:  # nothing to choose between: always that category
            return cls(classes, np.zeros((1, vectors.shape[1]), np.float32), np.zeros(1, np.float32))
        model = LogisticRegression(C=c, max_iter=2000).fit(vectors, labels)
        coef, intercept = model.coef_, model.intercept_
        if len(classes) == 2:  # sklearn keeps one row for two classes: logits (0, w.x + b) are equivalent
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
        return cls(list(model.classes_), coef.astype(np.float32), intercept.astype(np.float32))

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        """[N, classes] probabilities, classes in `self.classes` order."""
        logits = np.atleast_2d(vectors) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def rank(self, vector: np.ndarray) -> list[tuple[str, float]]:
        """All categories, likeliest first, with their probabilities."""
        probs = self.predict_proba(vector)[0]
        return [(self.classes[i], float(probs[i])) for i in np.argsort(-probs, kind="stable")]

    def save(self, path: Path) -> None:
        np.savez(path, classes=np.array(self.classes), coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, path: Path) -> CategoryHead:
        with np.load(path, allow_pickle=False) as data:
            return cls([str(c) for c in data["classes"]], data["coef"], data["intercept"])


def held_out_accuracy(
    vectors: np.ndarray, labels: list[str], c: float = DEFAULT_C, fraction: float = HELD_OUT_FRACTION
) -> dict[str, float | int | None]:
    """Accuracy of a head trained without a stratified `fraction` of the catalog, on that fraction.

    None when the catalog is too small to hold any out (a category with a single photo, or fewer
    held-out photos than categories).
    """
    counts = Counter(labels)
    n_test = round(fraction * len(labels))
    too_few = min(counts.values()) < 2 or min(n_test, len(labels) - n_test) < len(counts)
    if len(counts) < 2 or too_few:
        return {"accuracy": None, "held_out": 0}
    train, test = train_test_split(
        np.arange(len(labels)), test_size=n_test, stratify=labels, random_state=SPLIT_SEED
    )
    head = CategoryHead.fit(vectors[train], [labels[i] for i in train], c)
    predicted = np.asarray(head.classes)[head.predict_proba(vectors[test]).argmax(axis=1)]
    return {"accuracy": float(np.mean(predicted == np.asarray(labels)[test])), "held_out": len(test)}
