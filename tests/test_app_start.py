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

