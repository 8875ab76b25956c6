"""Similarity: what a hit's cosine means, as the share of the catalog's pairs that close which share the hit's
category, by a curve per category fitted on the catalog at build (`products.calibration`). An index without
this part shows the cosine moved onto [0, 1] (`calibration.linear_similarity`)."""

from __future__ import annotations

from pathlib import Path

from lookalike.products.calibration import SimilarityCalibration
from lookalike.products.index import LoadedIndex
from lookalike.products.parts.base import BuildContext, Part, Query
from lookalike.products.results import Hit


class Calibration(Part):
    name = "similarity"

    def __init__(self, curves: SimilarityCalibration) -> None:
        self.curves = curves

    @classmethod
    def write(cls, build: BuildContext, folder: Path) -> dict | None:
        fitted = SimilarityCalibration.fit(build.embedded.vectors, build.labels,
                                           query_vectors=build.embedded.query_side)
        return fitted.to_dict() if fitted else None

    @classmethod
    def open(cls, index: LoadedIndex, entry: dict, current: Part | None = None) -> Calibration:
        return cls(SimilarityCalibration.from_dict(entry))

    def score(self, cosine: float, category: str | None = None) -> float:
        return round(self.curves.score(cosine, category), 4)

    def annotate(self, hits: list[Hit], rows: list[dict], query: Query) -> None:
        for hit in hits:
            hit.similarity = self.score(hit.cosine, hit.category)

