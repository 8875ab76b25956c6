"""`lookalike.search(photo, index=IDX)` in a long-running process: answered from the index an update swapped
in within seconds (issue 36), from the embedder the index names; a first call on no index raises the loading
error and keeps nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lookalike
from lookalike.instances import Instances
from lookalike.products import one_call
from lookalike.products.index import IndexMissingError
from tests.products.tiny_index import ColourEmbedder, build_tiny


@pytest.fixture
def kept(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict]]:
    """A fresh set of kept live searchers for the test (closed after it), and the stand-in embedder served
    for the config the index names: the list of configs the one-call path asked for."""
    import model_zoo.product_embedders as product_embedders

    asked: list[dict] = []

    def create_embedder(**config: object) -> ColourEmbedder:
        asked.append(config)
        return ColourEmbedder()

    monkeypatch.setattr(product_embedders, "create_embedder", create_embedder)
    live = Instances(lambda path: one_call._open(path))
    monkeypatch.setattr(one_call, "_LIVE", live)
    yield asked
    for searcher in live:
        searcher.close()


def _yellow_photos(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        pixels = np.clip(np.asarray((220, 210, 40)) + rng.normal(0, 20, (24, 24, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return folder


def test_one_call_search_answers_from_the_index_an_update_swapped_in(
    tiny_catalog: Path, tiny_index: Path, kept: list[dict]
) -> None:
    query = sorted((tiny_catalog / "green").glob("*.png"))[0]
    before = lookalike.search(query, index=tiny_index, top_k=30, scope="all")
    assert {hit.category for hit in before.results} == {"red", "green", "blue"}
    assert [config["name"] for config in kept] == ["colour-test"]  # the embedder the index names

    yellow = _yellow_photos(tiny_catalog / "yellow", 6)
    build_tiny(tiny_catalog, tiny_index, update=True)
    swapped = time.monotonic()
    photo = sorted(yellow.glob("*.png"))[0]
    while True:  # the same process, the same call: no reload asked for
        after = lookalike.search(photo, index=str(tiny_index), top_k=30, scope="all")
        if "yellow" in {label for label, _ in after.categories} or time.monotonic() - swapped > 10:
            break
        time.sleep(0.1)
    assert "yellow" in {hit.category for hit in after.results}, "still answering from the index before the update"
    assert after.results[0].category == "yellow" and len(after.results) == 24
    assert time.monotonic() - swapped < one_call.DEFAULT_INTERVAL + 5
    assert len(one_call._LIVE) == 1  # one live searcher per resolved path ("idx" and its str alike)


def test_one_call_search_on_no_index_raises_and_keeps_nothing(tmp_path: Path, kept: list[dict]) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (24, 24), (200, 40, 40)).save(photo)
    with pytest.raises(IndexMissingError):
        lookalike.search(photo, index=tmp_path / "none")
    assert len(one_call._LIVE) == 0
    build_tiny(_yellow_photos(tmp_path / "catalog" / "yellow", 3).parent, tmp_path / "none")
    assert lookalike.search(photo, index=tmp_path / "none", top_k=3).results  # the next call tries again
