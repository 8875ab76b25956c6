"""`LiveIndex`: a folder swapped by builds is reloaded in the background, leased per request, the replaced
objects closed once their last lease ends (no growth over many reloads), failures reported, not raised."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from lookalike.vectors import index_folder
from lookalike.vectors.live import IndexUnavailableError, LiveIndex

MARKER = "manifest.json"


class Opened:
    """A stand-in for a loaded index: the text its folder held, and whether it was closed."""

    def __init__(self, text: str) -> None:
        self.text, self.closed = text, False


def _swap(out: Path, text: str) -> str:
    with index_folder.new_build(out) as building:
        (building / MARKER).write_text(text)
        return index_folder.swap_in(building, out)


def _load(path: Path, current: Opened | None) -> Opened:
    folder = index_folder.locate(path, MARKER)
    text = (folder / MARKER).read_text()
    if text == "damaged":
        raise ValueError(f"{folder / MARKER} is damaged: rebuild it")
    return Opened(text)


def _close(opened: Opened) -> None:
    assert not opened.closed, "closed twice"
    opened.closed = True


def test_twenty_reloads_close_every_replaced_object_once(tmp_path: Path) -> None:
    out = tmp_path / "index"
    _swap(out, "0")
    made: list[Opened] = []

    def load(path: Path, current: Opened | None) -> Opened:
        made.append(_load(path, current))
        return made[-1]

    live = LiveIndex(out, load, _close, interval=0)
    for n in range(1, 21):
        _swap(out, str(n))
        assert live.refresh()
        with live.lease() as opened:
            assert opened.text == str(n)
        assert not live.refresh()  # nothing changed since
    assert live.reloads == 20 and len(made) == 21
    assert [o.closed for o in made] == [True] * 20 + [False]
    live.close()
    assert all(o.closed for o in made)


def test_a_lease_keeps_its_object_open_across_a_reload(tmp_path: Path) -> None:
    out = tmp_path / "index"
    _swap(out, "old")
    live = LiveIndex(out, _load, _close, interval=0)
    with live.lease() as old:
        _swap(out, "new")
        assert live.refresh()
        assert not old.closed  # a request still uses it
        with live.lease() as new:
            assert new.text == "new"
    assert old.closed and not new.closed
    live.close()
    assert new.closed


def test_the_watcher_serves_an_update_within_its_interval(tmp_path: Path) -> None:
    out = tmp_path / "index"
    _swap(out, "old")
    with LiveIndex(out, _load, _close, interval=0.1) as live:
        served = live.generation
        started = time.monotonic()
        _swap(out, "new")
        assert live.wait_for(served, timeout=5)
        assert time.monotonic() - started < 2
        with live.lease() as opened:
            assert opened.text == "new"


def test_missing_then_damaged_then_built_index(tmp_path: Path) -> None:
    out = tmp_path / "index"
    live = LiveIndex(out, _load, _close, interval=0, name="test index")
    assert not live.loaded and "no index" in live.problem
    with pytest.raises(IndexUnavailableError, match="no index"), live.lease():
        pass
    _swap(out, "damaged")
    assert not live.refresh() and "damaged: rebuild it" in live.problem
    _swap(out, "good")
    assert live.refresh() and live.problem is None
    _swap(out, "damaged")  # a bad update keeps the good index serving, and says so
    assert not live.refresh()
    assert "cannot be loaded" in live.problem and "still serving the previous one" in live.problem
    with live.lease() as opened:
        assert opened.text == "good"
    live.close()


def test_leases_from_many_threads_during_reloads_never_see_a_closed_object(tmp_path: Path) -> None:
    out = tmp_path / "index"
    _swap(out, "0")
    live = LiveIndex(out, _load, _close, interval=0.01)
    failures: list[str] = []
    stop = threading.Event()

    def request() -> None:
        while not stop.is_set():
            with live.lease() as opened:
                if opened.closed:
                    failures.append(opened.text)
                time.sleep(0.001)

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for n in range(1, 11):
        served = live.generation
        _swap(out, str(n))
        assert live.wait_for(served, timeout=5)
    stop.set()
    for thread in threads:
        thread.join()
    live.close()
    assert failures == [] and live.reloads == 10
