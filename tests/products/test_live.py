"""A product index updated while it is searched: `LiveSearcher` serves each update within its interval, no
request fails meanwhile (4 threads searching), replaced searchers are closed, and one loaded before a swap
keeps reading its own folder."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from lookalike.products.index import load_index
from lookalike.products.live import IndexUnavailableError, LiveSearcher, load_searcher
from lookalike.products.search import ProductSearcher
from lookalike.vectors import index_folder
from tests.products.tiny_index import ColourEmbedder, build_tiny, colour_photos

INTERVAL = 0.2


def test_updates_are_served_while_four_clients_search(
    tiny_catalog: Path, tiny_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[ProductSearcher] = []
    real_close = ProductSearcher.close
    monkeypatch.setattr(ProductSearcher, "close", lambda self: (closed.append(self), real_close(self)))
    live = LiveSearcher(tiny_index, INTERVAL, embedder=ColourEmbedder())
    query = sorted((tiny_catalog / "green").glob("*.png"))[0]
    failures: list[BaseException] = []
    served: set[int] = set()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                with live.searcher() as searcher:
                    result = searcher.search(query, top_k=5, scope="all")
                    assert len(result.results) == 5 and all(hit.thumbnail for hit in result.results)
                    served.add(len(searcher.index.rows))
            except BaseException as exc:  # every failure counts, whatever it is
                failures.append(exc)

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    sizes, delays = [18], []
    try:
        for step in range(4):
            if step == 2:  # a removal: the red photos the first update added go
                for photo in (tiny_catalog / "red").glob("01*.png"):
                    photo.unlink()
            else:
                colour_photos(tiny_catalog, 3, start=10 + 10 * step)
            before = live.generation
            build_tiny(tiny_catalog, tiny_index, update=step % 2 == 0)
            finished = time.monotonic()
            assert live.wait_for(before, timeout=10), "the update was not served"
            delays.append(time.monotonic() - finished)
            with live.searcher() as searcher:
                sizes.append(len(searcher.index.rows))
                assert live.generation == index_folder.generation(tiny_index)
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    assert failures == []
    assert sizes == [18, 27, 36, 33, 42] and {18, 42} <= served
    assert max(delays) < INTERVAL + 2.0  # served within the interval plus a (tiny) load
    assert live.reloads == 4 and len(closed) == 4  # every replaced searcher closed, after its last request
    assert all(not searcher.index.store._forests for searcher in closed)
    live.close()
    assert len(closed) == 5


def test_a_searcher_keeps_reading_its_own_folder_after_a_swap(tiny_catalog: Path, tiny_index: Path) -> None:
    old = ProductSearcher.load(tiny_index, embedder=ColourEmbedder())
    for photo in (tiny_catalog / "blue").glob("*.png"):
        photo.unlink()  # the new index has no blue items at all
    build_tiny(tiny_catalog, tiny_index)
    query = sorted((tiny_catalog / "red").glob("*.png"))[0]
    results = []
    thread = threading.Thread(target=lambda: results.append(old.search(query, top_k=18, scope="all")))
    thread.start()  # a thread that never read the catalog before the swap
    thread.join()
    assert {hit.category for hit in results[0].results} == {"red", "green", "blue"}
    old.close()


def test_a_reload_keeps_the_models_of_the_searcher_in_use(tiny_catalog: Path, tiny_index: Path) -> None:
    current = ProductSearcher.load(tiny_index, embedder=ColourEmbedder())
    colour_photos(tiny_catalog, 2, start=50)
    build_tiny(tiny_catalog, tiny_index, update=True)
    again = load_searcher(tiny_index, current)
    assert again.embedder is current.embedder and len(again.index.rows) == 24
    current.close()
    again.close()


def test_a_missing_or_damaged_index_is_a_problem_until_a_build_mends_it(tiny_catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "later"
    live = LiveSearcher(out, interval=0, embedder=ColourEmbedder())
    assert not live.loaded and "no product index" in live.problem
    with pytest.raises(IndexUnavailableError, match="no product index"), live.searcher():
        pass
    build_tiny(tiny_catalog, out)
    assert live.refresh() and live.problem is None
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "catalog.sqlite").write_bytes(b"garbage" * 100)
    index_folder.bump_generation(broken)
    damaged = LiveSearcher(broken, interval=0, embedder=ColourEmbedder())
    assert "catalog.sqlite is damaged" in damaged.problem and "lookalike build" in damaged.problem
    live.close()
    damaged.close()
    load_index(out).close()
