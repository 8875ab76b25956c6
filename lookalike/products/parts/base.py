"""The part protocol: an index is a core (vectors, catalog rows, category head, manifest: `products.index`)
plus named parts, each one module of this package, each one `Part` subclass.

A part, at build and update: is chosen or not (`chosen`: its build option, else the index it updates, else
the preset), makes what it needs before the photos are embedded (`setup`), may add to what the category head
reads before it is fitted (`fit`), writes its own files and returns its manifest entry (`write`, under its
`name`). At load it opens its files (`open`; the searcher it replaces offers its loaded models for reuse). At
query time it may extract its cue from the photo (`cue`, or lazily while the category is ranked: `pending`),
add to the head's input (`head_input`), vote on the category ranking with the query's nearest catalog items
(`pool`, `vote`), re-order the hits (`rerank`), annotate them (`annotate`) and explain one (`explain`). Each
step defaults to doing nothing, so a part implements only what it does; build, update, search, explain and the
manifest loop over the parts (`products.parts.PARTS`) and never name one. docs/architecture.md has a worked
example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from PIL import Image

from lookalike.products.heads import NeighbourVote
from lookalike.products.options import BuildOptions
from lookalike.products.results import Hit, QueryCues

if TYPE_CHECKING:
    from lookalike.products.embedding import EmbeddedCatalog, Engine
    from lookalike.products.index import LoadedIndex
    from lookalike.products.manifest import IndexManifest
    from lookalike.products.previous import Previous
    from lookalike.vectors.stores import Found
    from model_zoo.product_embedders import ProductEmbedder


@dataclass
class BuildContext:
    """What a part sees of a build: the resolved options, the embedded catalog and its item ids, the index an
    update starts from, and what the category head will read and how the neighbour vote is set (`fit`)."""

    options: BuildOptions
    embedded: EmbeddedCatalog
    ids: list[int]
    previous: Previous | None
    embedder: ProductEmbedder
    engine: Engine
    show_bar: bool = False
    head_views: list[np.ndarray] = field(default_factory=list)  # more vectors per photo the head reads
    vote: NeighbourVote = field(default_factory=lambda: NeighbourVote(weight=0.0))
    state: dict[str, Any] = field(default_factory=dict)  # what each part's `setup` made, by part name

    @property
    def labels(self) -> list[str]:
        return [item.category for item in self.embedded.items]

    @property
    def paths(self) -> list[Path]:
        return [item.path for item in self.embedded.items]

    def before(self, name: str) -> Any:
        """The entry the part `name` had in the index an update starts from (None: a fresh build, or none)."""
        return self.previous.manifest.part(name) if self.previous else None


@dataclass
class Query:
    """One query in flight: its vector, its photo (None when re-run from kept cues), what it asks (`asks`:
    "rerank", "read_text"), the cues extracted so far (kept by the caller to search again without the photo),
    the whole catalog's nearest items every vote reads (fetched once, `Part.pool`) and this search's notes."""

    vector: np.ndarray
    photo: Image.Image | None = None
    cues: QueryCues = field(default_factory=QueryCues)
    asks: dict[str, bool | None] = field(default_factory=dict)
    neighbours: Found | None = None
    neighbour_classes: np.ndarray | None = None  # the head's class number of each neighbour
    notes: dict[str, Any] = field(default_factory=dict)  # per search, by part name (the verified hits)
    result: dict[str, Any] = field(default_factory=dict)  # fields of the SearchResult a part decides (in_catalog)


class Part:
    """One optional component of a product index (see the module's docstring)."""

    name: ClassVar[str]  # its manifest entry's key, and its cue's key in `QueryCues`
    option: ClassVar[str | None] = None  # the `BuildOptions` field that turns it on or off (None: not asked)
    ask: ClassVar[str | None] = None  # the query keyword that turns its cue on (`asks`)
    ask_default: ClassVar[bool] = True  # whether it is on when the query leaves it None
    unavailable: ClassVar[str] = ""  # the error for a query that asks for it on an index without it

    # -- build and update
    @classmethod
    def chosen(cls, options: BuildOptions, before: IndexManifest | None, tuned: bool, preset: bool) -> bool:
        """Whether a build writes this part: its option when given, else an update keeps the previous index's
        choice, else the preset (`products.parts.PRESETS`). `tuned`: the build's backbone is tuned."""
        asked = getattr(options, cls.option) if cls.option else None
        if asked is not None:
            return bool(asked)
        if before is not None:
            return cls.entry(before) is not None
        return preset

    @classmethod
    def entry(cls, manifest: IndexManifest) -> Any:
        """This part's entry in `manifest`, None for an index without it."""
        return manifest.part(cls.name)

    @classmethod
    def setup(cls, options: BuildOptions, before: IndexManifest | None) -> Any:
        """Before any photo is embedded, what this part's build needs made (a model: a wrong name fails at
        once); kept in `BuildContext.state[name]`."""
        return None

    @classmethod
    def fit(cls, build: BuildContext) -> None:
        """Before the category head is fitted: add to `build.head_views` or set `build.vote`."""

    @classmethod
    def write(cls, build: BuildContext, folder: Path) -> Any:
        """Write this part's files into `folder` (the new index); returns its manifest entry."""
        raise NotImplementedError

    # -- load
    @classmethod
    def open(cls, index: LoadedIndex, entry: Any, current: Part | None = None) -> Part:
        """This part of the opened `index`; `current`: the same part of the searcher being replaced, whose
        loaded models may be reused. Raises IndexCorruptError for damaged files, naming them."""
        raise NotImplementedError

    def close(self) -> None:
        """Release files or models (the searcher is being replaced)."""

    # -- query
    def cue(self, query: Query) -> None:
        """Extract this part's cue from `query.photo` into `query.cues[self.name]`, when it is wanted and the
        photo is there; a cue given in `query.cues` is kept."""

    def pending(self, query: Query) -> bool:
        """Whether this part may still extract its cue while the category is ranked (`vote`), so a caller
        asking for the cues alone (`query_cues`) must rank."""
        return False

    def head_input(self, query: Query) -> np.ndarray | None:
        """A vector the category head reads beside the query's own (`heads.head_input`)."""
        return None

    def pool(self, query: Query) -> int:
        """How many of the whole catalog's nearest items `vote` reads (`query.neighbours`)."""
        return 0

    def vote(self, probs: np.ndarray, query: Query) -> np.ndarray:
        """The category probabilities (head classes' order) after this part's vote."""
        return probs

    def rerank(self, found: Found, query: Query) -> Found:
        """The scope's hits re-ordered."""
        return found

    def annotate(self, hits: list[Hit], rows: list[dict], query: Query) -> None:
        """Fill in what this part knows of each hit (`rows`: their catalog rows)."""

    def explain(self, row: dict, photo: Image.Image, cues: QueryCues) -> dict[str, Any]:
        """Fields of `explain.Explanation` this part gives for the catalog item of `row`."""
        return {}
