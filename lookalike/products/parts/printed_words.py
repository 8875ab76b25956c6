"""Printed words: the words read on every catalog photo (OCR, `--read-text`: for catalogs of printed packs)
vote for the query's category with the words read on it (`products.printed_words`). Reading is slow next to
the rest of a query, so the query is read only when the other cues leave its first category under
`printed_words.READ_BELOW` (its vote runs last); a query's `read_text` (None: yes) turns reading off. Entry:
the reader's settings and counts (`printed_words.write_words`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.products import printed_words
from lookalike.products.index import LoadedIndex
from lookalike.products.parts.base import BuildContext, Part, Query
from lookalike.products.results import Hit, QueryCues


class PrintedWords(Part):
    name = "words"
    option = "read_text"
    ask = "read_text"
    unavailable = "this index holds no printed words to match: build it with --read-text"

    def __init__(self, index: LoadedIndex) -> None:
        categories = dict(zip(index.rows.column("id"), index.rows.column("category"), strict=True))
        self.items = printed_words.stored_words(index.folder)
        self.table = printed_words.WordTable(self.items, categories)
        self.classes = index.head.classes

    @classmethod
    def write(cls, build: BuildContext, folder: Path) -> dict:
        """An update reads its new photos only."""
        before = build.previous and printed_words.reusable(build.previous.folder, build.before(cls.name))
        return printed_words.write_words(folder, build.ids, build.paths, build.embedded.digests, before or None,
                                         build.show_bar)

    @classmethod
    def open(cls, index: LoadedIndex, entry: dict, current: Part | None = None) -> PrintedWords:
        return cls(index)

    def pending(self, query: Query) -> bool:
        """Whether the query's words may still be read (its photo is here, reading is on, none read yet)."""
        return query.photo is not None and self.name not in query.cues and query.asks.get(self.ask) is not False

    def vote(self, probs: np.ndarray, query: Query) -> np.ndarray:
        if self.pending(query) and probs.max() < printed_words.READ_BELOW:
            query.cues[self.name] = printed_words.read_words(query.photo)
        words = query.cues.get(self.name)
        return probs if words is None else printed_words.category_vote(probs, self.table.vote(words, self.classes))

    def annotate(self, hits: list[Hit], rows: list[dict], query: Query) -> None:
        words = query.cues.get(self.name)
        if words is not None:
            for hit in hits:
                hit.shared_words = self.table.shared(words, self.items.get(hit.id, ()))

    def explain(self, row: dict, photo: Image.Image, cues: QueryCues) -> dict:
        words = cues.get(self.name)
        return {} if words is None else {"shared_words": self.table.shared(words, self.items.get(row["id"], ()))}
