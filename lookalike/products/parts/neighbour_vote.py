"""The neighbour vote: the query's nearest catalog photos vote for their categories, blended with the head's
probabilities (`heads.NeighbourVote`; its settings are the entry). An index without it ranks by the head alone."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from lookalike.products.heads import NeighbourVote
from lookalike.products.index import LoadedIndex
from lookalike.products.parts.base import BuildContext, Part, Query


class NeighbourVotePart(Part):
    name = "neighbour_vote"
    option = "vote"

    def __init__(self, vote: NeighbourVote) -> None:
        self.settings = vote

    @classmethod
    def fit(cls, build: BuildContext) -> None:
        build.vote = build.options.vote or NeighbourVote()

    @classmethod
    def write(cls, build: BuildContext, folder: Path) -> dict:
        return asdict(build.vote)

    @classmethod
    def open(cls, index: LoadedIndex, entry: dict, current: Part | None = None) -> NeighbourVotePart:
        return cls(NeighbourVote(**entry))

    def pool(self, query: Query) -> int:
        return self.settings.k if self.settings.weight > 0 else 0

    def vote(self, probs: np.ndarray, query: Query) -> np.ndarray:
        voters = self.pool(query)
        if not voters:
            return probs
        cosines, classes = query.neighbours.cosines[None, :voters], query.neighbour_classes[None, :voters]
        return self.settings.blend(probs[None], cosines, classes)[0]
