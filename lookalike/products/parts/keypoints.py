"""Keypoints: every catalog photo's SIFT keypoints (`local_features`), so a query's first hits are verified by
one homography (`spatial`): the whole catalog's verified first hits vote for the category, the scope's first
hits rise by their inliers, and a hit's matches can be drawn (`explain`). On by default (not with `--fast`);
a query's `rerank` (None: DEFAULT_RERANK) turns its verification on or off. Entry: the extraction settings and
sizes (`local_features.write_local_features`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.products import spatial
from lookalike.products.explain import to_pixels
from lookalike.products.index import LoadedIndex
from lookalike.products.local_features import LocalFeatureTable, reusable, write_local_features
from lookalike.products.parts.base import BuildContext, Part, Query
from lookalike.products.results import Hit, QueryCues
from lookalike.vectors.stores import Found

#: Whether search verifies its first hits when the index has keypoints (docs/experiments/spatial-reranking.md).
DEFAULT_RERANK = True


@dataclass
class KeypointCue:
    """A query's keypoints and the inlier counts matched so far (item id -> count): searching again from the
    cue matches no candidate twice."""

    features: spatial.LocalFeatures
    inliers: dict[int, int] = field(default_factory=dict)


class Keypoints(Part):
    name = "local_features"
    option = "local_features"
    ask = "rerank"
    ask_default = DEFAULT_RERANK
    unavailable = "this index has no local features to verify hits with: build it with --local-features"

    def __init__(self, table: LocalFeatureTable) -> None:
        self.table = table

    @classmethod
    def write(cls, build: BuildContext, folder: Path) -> dict:
        """An update copies its unchanged photos' keypoints (extracted with today's settings); the previous
        table's memory maps are released on return, before the previous folder is deleted."""
        stored = reusable(build.previous.folder, build.before(cls.name)) if build.previous else None
        return write_local_features(folder, build.ids, build.paths, stored)

    @classmethod
    def open(cls, index: LoadedIndex, entry: dict, current: Part | None = None) -> Keypoints:
        return cls(LocalFeatureTable(index.folder))

    def _verification(self, query: Query) -> spatial.Verification | None:
        cue = query.cues.get(self.name)
        return None if cue is None else spatial.Verification(cue.features, self.table.get, cue.inliers)

    def cue(self, query: Query) -> None:
        wanted = query.asks.get(self.ask)
        if query.photo is not None and self.name not in query.cues and (self.ask_default if wanted is None else wanted):
            query.cues[self.name] = KeypointCue(spatial.extract(query.photo, spatial.QUERY_SIDE))

    def pool(self, query: Query) -> int:
        return spatial.TOP_N if self.name in query.cues else 0

    def vote(self, probs: np.ndarray, query: Query) -> np.ndarray:
        verification = self._verification(query)
        if verification is None:
            return probs
        counts = verification.counts(query.neighbours.ids[: spatial.TOP_N])
        return spatial.category_vote(probs, query.neighbour_classes[: spatial.TOP_N], counts)

    def rerank(self, found: Found, query: Query) -> Found:
        """The first TOP_N hits matched against the query's keypoints, all hits re-ordered."""
        verification = self._verification(query)
        if verification is None:
            return found
        counts = verification.counts(found.ids[: spatial.TOP_N])
        query.notes[self.name] = dict(zip(found.ids[: len(counts)].tolist(), counts.tolist(), strict=True))
        order, _ = spatial.rerank(list(range(len(found.ids))), found.cosines, counts)
        return Found(found.ids[order], found.cosines[order], [found.categories[i] for i in order])

    def annotate(self, hits: list[Hit], rows: list[dict], query: Query) -> None:
        verified = query.notes.get(self.name, {})
        for hit in hits:
            hit.inliers = verified.get(hit.id)

    def explain(self, row: dict, photo: Image.Image, cues: QueryCues) -> dict:
        stored = self.table.get([row["id"]])[0]
        if stored is None:
            return {}
        query_points, catalog_points = spatial.matched_points(spatial.extract(photo, spatial.QUERY_SIDE), stored)
        return {"query_points": to_pixels(query_points, photo.size, spatial.QUERY_SIDE),
                "catalog_points": to_pixels(catalog_points, (row["width"], row["height"]))}
