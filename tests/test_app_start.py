"""The app's start-up order (issue 37): with a built index the default face model loads after the page answers,
in a thread (after any index build running then); a face request made meanwhile gets the same model, loaded
once."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import ClassVar

import pytest

pytest.importorskip("gradio")

from lookalike.app.services import Services
from lookalike.instances import Instances
from model_zoo import DEFAULT_FACE_MODEL


class FakeVerifier:
    made: ClassVar[list[str]] = []

    def __init__(self, name: str) -> None:
        time.sleep(0.2)  # a model load takes a while: a request made meanwhile must wait for this one
        FakeVerifier.made.append(name)
        self.warmed = False

    def warm_up(self) -> None:
        self.warmed = True


def _services(building: bool) -> Services:
    FakeVerifier.made = []
    products = SimpleNamespace(building=building)
    return Services(products, [DEFAULT_FACE_MODEL], Instances(FakeVerifier))


def test_the_face_model_loads_in_the_background_once() -> None:
    services = _services(building=False)
    thread = services.load_faces_later()
    assert thread.daemon
    time.sleep(0.05)
    request = services.verifier(DEFAULT_FACE_MODEL)  # a face request while it loads: waits, same object
    thread.join(5)
    assert not thread.is_alive()
    assert FakeVerifier.made == [DEFAULT_FACE_MODEL]
    assert request is services.verifier(DEFAULT_FACE_MODEL) and request.warmed


def test_a_first_start_build_goes_before_the_face_model() -> None:
    services = _services(building=True)
    thread = services.load_faces_later()
    time.sleep(1.5)
    assert FakeVerifier.made == []  # the build has the cores
    services.products.building = False
    thread.join(5)
    assert FakeVerifier.made == [DEFAULT_FACE_MODEL]


def test_a_failed_face_load_leaves_the_page_up(caplog: pytest.LogCaptureFixture) -> None:
    def broken(name: str) -> None:
        raise RuntimeError("weights missing")

    services = Services(SimpleNamespace(building=False), [DEFAULT_FACE_MODEL], Instances(broken))
    thread = services.load_faces_later()
    thread.join(5)
    assert "loading the face model failed" in caplog.text
    assert threading.main_thread().is_alive()



def test_the_demos_first_start_serves_a_quick_index_while_the_full_one_builds(tmp_path, monkeypatch) -> None:
    """Issue 37: the first search waits for the quick index only; the default index replaces it when built, the
    tab saying so meanwhile; a start that finds only the quick index builds the full one again."""
    import lookalike.products.build as build
    from lookalike.app import demo, services
    from lookalike.app.services import ProductIndex
    from lookalike.products.live import LiveSearcher
    from tests.products.tiny_index import ColourEmbedder, colour_photos

    catalog, folder = colour_photos(tmp_path / "catalog", 6), tmp_path / "index"
    real, asked, full_may_run = build.build_index, [], threading.Event()

    def fake_build(catalog, out, options, **kwargs):  # the real build, with a stand-in network, keypoints or not
        asked.append(options)
        if not options.fast:
            assert full_may_run.wait(10)
        return real(catalog, out, embedder=ColourEmbedder(), fast=True, trees=2, head_model="none",
                    local_features=not options.fast, **kwargs)

    monkeypatch.setattr(build, "build_index", fake_build)
    monkeypatch.setattr(services, "LiveSearcher", lambda path: LiveSearcher(path, embedder=ColourEmbedder()))
    products = ProductIndex(folder)
    products.build_in_background(catalog, quick_first=True)
    deadline = time.monotonic() + 20
    while not products.ready and time.monotonic() < deadline:
        time.sleep(0.05)
    assert products.ready and products.improving and not products.building
    assert "quick index" in products.status() and not demo.complete(folder)
    with products.lease() as searcher:  # searches are served from the quick index meanwhile
        assert searcher.part("local_features") is None
    full_may_run.set()
    while products.improving and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not products.improving and products.status() == "" and demo.complete(folder)
    assert [(o.fast, o.head_model) for o in asked] == [(True, "none"), (False, None)]
    with products.lease() as searcher:
        assert searcher.part("local_features") is not None
    products.live.close()
