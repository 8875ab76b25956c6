"""The category head: multinomial logistic regression on catalog embeddings, trained at build time,
blended with a vote of the query's nearest catalog photos.

It ranks categories for a query so the search can be narrowed to the likeliest one. The regression
sees the catalog as a whole; the neighbour vote sees the few photos most like this query, which
catches products a category's average misses. Blending the two was chosen by 5-fold cross-validation
on the catalog half of shared/data/products (never on the queries); see `NeighbourVote`.
Accuracy is measured on a stratified held-out part of the catalog, then the head is refit on
everything. Stored as plain arrays (.npz, no pickle), so loading an index never runs code from a file.

The head can read a second view of each photo: its vector from another backbone (`head_input`), joined to
the index's own. Two ImageNet networks err on different photos: with EfficientNet-Lite2's vector beside
Lite1's, the category checks gain more queries than they lose, mostly garment types the clothing photos confuse
(figures in docs/experiments/second-view.md). The neighbour vote keeps the index's vectors.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import numpy as np

from lookalike.products.splits import SPLIT_SEED
from lookalike.vectors.neighbours import nearest

#: Inverse regularisation, chosen by 5-fold CV on the catalog half of shared/data/products (C in 3..1000).
DEFAULT_C = 30.0
HELD_OUT_FRACTION = 0.2


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise probabilities from [N, classes] logits (shifted first, so large logits cannot overflow)."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def ranking(classes: list[str], probs: np.ndarray) -> list[tuple[str, float]]:
    """Every class with its probability (one row of probabilities), likeliest first; ties keep class order."""
    return [(classes[i], float(probs[i])) for i in np.argsort(-probs, kind="stable")]


@dataclass(frozen=True)
class NeighbourVote:
    """The k nearest catalog photos vote for their categories, each with weight exp(cosine / temperature);
    the vote's share `weight` is blended with the head's probabilities.

    Defaults chosen by 5-fold cross-validation on the catalog half of shared/data/products (never the
    queries; efficientnet_lite0; grid k 5..40, temperature 0.02..0.1, weight 0..0.65, C 10..100), where the
    vote raised the head's category accuracy; scored once on the query half afterwards, it raised it there too,
    for Lite0 and the default Lite1 (figures in docs/experiments/category-head.md). `weight=0` turns the vote
    off.
    """

    k: int = 5
    temperature: float = 0.05
    weight: float = 0.2

    def blend(self, head_probs: np.ndarray, similarities: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """[N, classes] probabilities from the head's [N, classes] and each query's neighbours:
        `similarities` (cosine) and `labels` (category numbers), both [N, <= k]."""
        if self.weight == 0 or similarities.size == 0:
            return head_probs
        votes = np.zeros_like(head_probs)
        strength = np.exp((similarities - similarities.max(axis=1, keepdims=True)) / self.temperature)
        rows = np.repeat(np.arange(len(votes)), similarities.shape[1])
        np.add.at(votes, (rows, labels.reshape(-1)), strength.reshape(-1))
        votes /= votes.sum(axis=1, keepdims=True)
        return (1.0 - self.weight) * head_probs + self.weight * votes


@dataclass
class CategoryHead:
    classes: list[str]
    coef: np.ndarray  # [classes, dim]
    intercept: np.ndarray  # [classes]

    @classmethod
    def fit(
        cls, vectors: np.ndarray, labels: list[str], c: float = DEFAULT_C, start: CategoryHead | None = None
    ) -> CategoryHead:
        """`start`, a head fitted on part of the same data (the held-out run), is where the solver begins:
        the full fit then needs far fewer iterations (docs/experiments/inference-runtimes.md)."""
        classes = sorted(set(labels))
        if len(classes) == 1:  # nothing to choose between: always that category
            return cls(classes, np.zeros((1, vectors.shape[1]), np.float32), np.zeros(1, np.float32))
        from sklearn.linear_model import LogisticRegression  # here: searching needs no sklearn (slow to import)

        model = LogisticRegression(C=c, max_iter=2000, warm_start=start is not None and start.classes == classes)
        if model.warm_start:
            coef, intercept = start.coef.astype(np.float64), start.intercept.astype(np.float64)
            if len(classes) == 2:  # back to sklearn's single row (see below)
                coef, intercept = coef[1:] - coef[:1], intercept[1:] - intercept[:1]
            model.coef_, model.intercept_ = coef, intercept
        model.fit(vectors, labels)
        coef, intercept = model.coef_, model.intercept_
        if len(classes) == 2:  # sklearn keeps one row for two classes: logits (0, w.x + b) are equivalent
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
        return cls(list(model.classes_), coef.astype(np.float32), intercept.astype(np.float32))

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        """[N, classes] probabilities, classes in `self.classes` order."""
        return softmax(np.atleast_2d(vectors) @ self.coef.T + self.intercept)

    def rank(self, vector: np.ndarray) -> list[tuple[str, float]]:
        """All categories, likeliest first, with their probabilities."""
        return ranking(self.classes, self.predict_proba(vector)[0])

    def save(self, path: Path) -> None:
        np.savez(path, classes=np.array(self.classes), coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, path: Path) -> CategoryHead:
        with np.load(path, allow_pickle=False) as data:
            return cls([str(c) for c in data["classes"]], data["coef"], data["intercept"])


_preloading: threading.Thread | None = None


def preload() -> None:
    """Import the solver in a background thread, so a build's slow import overlaps its embedding. The build
    waits for it (`preloaded`) before its own sklearn imports: two threads importing sklearn at once can
    meet its circular imports half done."""
    global _preloading
    _preloading = threading.Thread(target=import_module, args=("sklearn.linear_model",), daemon=True)
    _preloading.start()


def preloaded() -> None:
    """Wait for `preload`'s import, if one runs."""
    if _preloading is not None:
        _preloading.join()


def head_input(vectors: np.ndarray, views: Sequence[np.ndarray] = ()) -> np.ndarray:
    """What the head reads: the vectors, or each vector joined to its other views at equal weight (all unit
    length, so the joined vector over sqrt(1 + views) is unit length too)."""
    if not len(views):
        return vectors
    return np.concatenate([vectors, *views], axis=-1) / np.float32(np.sqrt(1.0 + len(views)))


def held_out_accuracy(
    vectors: np.ndarray,
    labels: list[str],
    c: float = DEFAULT_C,
    vote: NeighbourVote | None = None,
    fraction: float = HELD_OUT_FRACTION,
    views: Sequence[np.ndarray] = (),
) -> tuple[dict[str, float | int | None], CategoryHead | None]:
    """Accuracy of the head (alone, and blended with `vote` as search uses it) trained without a
    stratified `fraction` of the catalog, on that fraction; and that head, a start for the full fit.
    With `views` the head reads them joined to the vectors (`head_input`); the vote uses the vectors.

    Accuracies are None when the catalog is too small to hold any out (a category with a single photo,
    or fewer held-out photos than categories).
    """
    vote = vote or NeighbourVote()
    counts = Counter(labels)
    n_test = round(fraction * len(labels))
    too_few = min(counts.values()) < 2 or min(n_test, len(labels) - n_test) < len(counts)
    if len(counts) < 2 or too_few:
        return {"accuracy": None, "head_only_accuracy": None, "held_out": 0}, None
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        np.arange(len(labels)), test_size=n_test, stratify=labels, random_state=SPLIT_SEED
    )
    head_vectors = head_input(vectors, views)
    head = CategoryHead.fit(head_vectors[train], [labels[i] for i in train], c)
    truth = np.asarray(labels)[test]
    head_probs = head.predict_proba(head_vectors[test])
    similarities, neighbours = nearest(vectors[train], vectors[test], vote.k)
    numbers = np.searchsorted(head.classes, np.asarray(labels)[train])[neighbours]
    blended = vote.blend(head_probs, similarities, numbers)
    classes = np.asarray(head.classes)
    return {
        "accuracy": float(np.mean(classes[blended.argmax(axis=1)] == truth)),
        "head_only_accuracy": float(np.mean(classes[head_probs.argmax(axis=1)] == truth)),
        "held_out": len(test),
    }, head
