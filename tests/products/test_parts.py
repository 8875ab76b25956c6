"""The part protocol: a cue added as one class (registered in `parts.PARTS`) is written by a build, kept by an
update, opened by the searcher, votes and annotates, and an index built without it still loads. Stand-in
embedder and colour photos (`tiny_index`): a second."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from lookalike.products import parts as registry
from lookalike.products.index import LoadedIndex
from lookalike.products.parts import BuildContext, Part, Query
from lookalike.products.results import Hit
from lookalike.products.search import ProductSearcher
from tests.products.tiny_index import COLOURS, ColourEmbedder, build_tiny, colour_photos


class Loudest(Part):
    """A toy cue: every vote goes to the category named in the index's file, and each hit is marked."""

    name = "loudest"
    opened: ClassVar[list[Loudest]] = []

    def __init__(self, category: int) -> None:
        self.category = category
        Loudest.opened.append(self)

    @classmethod
    def write(cls, build: BuildContext, folder: Path) -> dict:
        (folder / "loudest.txt").write_text("green")
        return {"photos": len(build.ids), "kept_from": build.before(cls.name)}

    @classmethod
    def open(cls, index: LoadedIndex, entry: dict, current: Part | None = None) -> Loudest:
        return cls(index.head.classes.index((index.folder / "loudest.txt").read_text()))

    def vote(self, probs: np.ndarray, query: Query) -> np.ndarray:
        votes = np.zeros_like(probs)
        votes[self.category] = 1.0
        return votes

    def annotate(self, hits: list[Hit], rows: list[dict], query: Query) -> None:
        for hit in hits:
            hit.title = f"loud {hit.title}"


def register(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "PARTS", (*registry.PARTS, Loudest))
    monkeypatch.setattr(registry, "PRESETS", {name: (*names, "loudest") for name, names in registry.PRESETS.items()})
    Loudest.opened.clear()


def test_a_part_added_as_one_class_is_built_kept_and_searched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    register(monkeypatch)
    catalog = colour_photos(tmp_path / "catalog", 6)
    out = tmp_path / "index"
    report = build_tiny(catalog, out)
    assert report["loudest"] == {"photos": 18, "kept_from": None} and (out / "loudest.txt").is_file()
    red = sorted((catalog / "red").glob("*.png"))[0]
    result = ProductSearcher.load(out, ColourEmbedder()).search(red, top_k=3)
    assert result.categories[0] == ("green", 1.0)  # its vote, after every other
    assert all(hit.category == "green" and hit.title.startswith("loud") for hit in result.results)

    colour_photos(catalog, 2, start=6)
    again = build_tiny(catalog, out, update=True)
    assert again["loudest"] == {"photos": 24, "kept_from": {"photos": 18, "kept_from": None}}


def test_an_index_without_the_part_loads_without_it(
    monkeypatch: pytest.MonkeyPatch, tiny_index: Path, tiny_catalog: Path
) -> None:
    register(monkeypatch)  # after the index was built
    assert "loudest" not in (tiny_index / "manifest.json").read_text()
    searcher = ProductSearcher.load(tiny_index, ColourEmbedder())
    assert "loudest" not in searcher.parts and not Loudest.opened
    red = sorted((tiny_catalog / "red").glob("*.png"))[0]
    assert searcher.search(red, top_k=3).categories[0][0] == "red"
    assert set(COLOURS) == set(searcher.index.head.classes)
