"""The in-catalog decision: whether a query shows something of the catalog's kind (`products.open_set`: the
score, fitted at build by leaving each category out in turn), on every search as `SearchResult.in_catalog` and
`in_catalog_score`. It also keeps the shown similarity honest: a hit's similarity is the share of such pairs
that share the category, and a query of a kind the catalog lacks shares it with none, so the hits of a query
scored below the threshold have their calibrated similarity multiplied by score / threshold (a query above it
keeps its figures as calibrated; one far below reads near 0). An index without this part answers None for both
and shows the similarity as before; an update adds it or refreshes it (it needs nothing but the vectors and the
embedder's ImageNet classifier, kept in its file for the class-profile cue)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookalike.products.errors import IndexCorruptError
from lookalike.products.index import LoadedIndex
from lookalike.products.open_set import Classifier, InCatalog, Spread, fit, query_features
from lookalike.products.options import BuildOptions
from lookalike.products.parts.base import BuildContext, Part, Query
from lookalike.products.results import Hit

FILE = "open_set.npz"


class OpenSet(Part):
    name = "open_set"

    def __init__(self, spread: Spread, decision: InCatalog) -> None:
        self.spread, self.decision = spread, decision

    @classmethod
    def chosen(cls, options: BuildOptions, before, tuned: bool, preset: bool) -> bool:
        return preset or before is not None  # an update of an index without it adds it

    @staticmethod
    def classifier(embedder: object) -> Classifier | None:
        """The embedder's linear ImageNet classifier over its pooled features (timm's `get_classifier`), if it
        has one of its vectors' width (a tuned Lite backbone keeps its own, untouched by the tuning)."""
        model = getattr(embedder, "model", None)
        layer = model.get_classifier() if hasattr(model, "get_classifier") else None
        weight, bias = getattr(layer, "weight", None), getattr(layer, "bias", None)
        if weight is None or bias is None or weight.ndim != 2 or weight.shape[1] != getattr(embedder, "dim", -1):
            return None
        stored = weight.detach().cpu().numpy().astype(np.float16)  # as its file keeps it, so search scores the same
        return Classifier(stored.astype(np.float32), bias.detach().cpu().numpy().astype(np.float32))

    @classmethod
    def write(cls, build: BuildContext, folder: Path) -> dict | None:
        fitted = fit(build.embedded.vectors, build.labels, classifier=cls.classifier(build.embedder),
                     query_vectors=build.embedded.query_side)
        if fitted is None:
            return None
        spread, decision = fitted
        profile = {} if spread.classifier is None else {
            "weight": spread.classifier.weight.astype(np.float16), "bias": spread.classifier.bias,
            "profiles": spread.profiles}
        np.savez(folder / FILE, centroids=spread.centroids.astype(np.float32), table=spread.table,
                 classes=np.asarray(spread.classes), **profile)
        return decision.to_dict()

    @classmethod
    def open(cls, index: LoadedIndex, entry: dict, current: Part | None = None) -> OpenSet:
        path = index.folder / FILE
        try:
            with np.load(path, allow_pickle=False) as saved:
                classifier = Classifier(saved["weight"].astype(np.float32), saved["bias"].astype(np.float32)) if (
                    "weight" in saved.files) else None
                spread = Spread([str(c) for c in saved["classes"]], saved["centroids"].astype(np.float64),
                                saved["table"], classifier, saved["profiles"] if classifier else None)
            decision = InCatalog.from_dict(entry)
            if decision.features != spread.names:
                raise ValueError(f"it holds the cues {list(spread.names)}, the manifest {list(decision.features)}")
            return cls(spread, decision)
        except (OSError, KeyError, ValueError) as exc:
            raise IndexCorruptError(f"{path} is damaged or missing ({exc}); rebuild the index") from None

    def pool(self, query: Query) -> int:
        return 1

    def annotate(self, hits: list[Hit], rows: list[dict], query: Query) -> None:
        """Decides from the nearest catalog item (the pool of one it asked for) and the centroids; below the
        threshold, gates the hits' calibrated similarity. The ranking is never changed."""
        features = query_features(self.spread, query.neighbours.cosines[:1], query.vector[None])
        score = float(self.decision.score(features)[0])
        query.result.update(in_catalog=score >= self.decision.threshold, in_catalog_score=round(score, 4))
        if score < self.decision.threshold:
            gate = score / self.decision.threshold
            for hit in hits:
                hit.similarity = round(hit.similarity * gate, 4)
