"""The parts an index may have, in the order a search runs them (the head's inputs, then the votes: nearest
photos, verified keypoints, printed words, as it reads only when the others leave the category unsure; the
in-catalog decision last, as it reads the final ranking's neighbours and scales the calibrated similarity),
and the presets a build starts from. Adding a cue is adding a module here and its class to PARTS
(docs/architecture.md, "How to add a cue")."""

from __future__ import annotations

from lookalike.products.parts.base import BuildContext, Part, Query
from lookalike.products.parts.calibration import Calibration
from lookalike.products.parts.head_view import HeadView
from lookalike.products.parts.keypoints import Keypoints
from lookalike.products.parts.neighbour_vote import NeighbourVotePart
from lookalike.products.parts.open_set import OpenSet
from lookalike.products.parts.printed_words import PrintedWords
from lookalike.products.parts.thumbnails import Thumbnails

__all__ = ["PARTS", "PRESETS", "BuildContext", "Part", "Query"]

PARTS: tuple[type[Part], ...] = (
    Thumbnails, HeadView, NeighbourVotePart, Keypoints, PrintedWords, Calibration, OpenSet
)
#: What a fresh build writes unless an option says otherwise: the default finds the query's own product
#: (keypoints); `--fast` is the frozen build's list (the head view is written for a frozen backbone only).
PRESETS: dict[str, tuple[str, ...]] = {
    "default": ("thumbnails", "head_view", "neighbour_vote", "local_features", "similarity", "open_set"),
    "fast": ("thumbnails", "head_view", "neighbour_vote", "similarity", "open_set"),
}
