"""The query network's INT8 twin (issue 37; off by default, `QUERY_INT8`): calibrated on given photos, made once,
kept per embedder, refused when it strays from fp32."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from model_zoo import create_embedder, product_embedders
from model_zoo import int8 as int8_module

PHOTOS = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket(), data.cat(), data.immunohistochemistry()]


@pytest.fixture(autouse=True)
def _int8_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(product_embedders, "QUERY_INT8", True)


def test_with_int8_off_the_queries_keep_the_fp32_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(product_embedders, "QUERY_INT8", False)  # the shipped default
    embedder = create_embedder("efficientnet_lite0", size=160)
    queries = embedder.for_queries(lambda: pytest.fail("no calibration photos are read with INT8 off"))
    assert not queries.int8 and queries._onnx is embedder._onnx


def test_queries_run_through_an_int8_twin_close_to_fp32() -> None:
    embedder = create_embedder("efficientnet_lite0", size=160)
    read = []
    queries = embedder.for_queries(lambda: read.append(1) or PHOTOS)
    assert queries.int8 and not embedder.int8 and read == [1]
    assert queries.config == {**embedder.config, "flip": False, "int8": True}  # its own cache key
    assert queries._onnx.path != embedder._onnx.path and embedder.for_queries() is queries  # an evaluation's too
    fp32 = create_embedder("efficientnet_lite0", size=160, flip=False).embed(PHOTOS)
    found = queries.embed(PHOTOS)
    cosines = (fp32 * found).sum(axis=1)
    assert cosines.mean() >= int8_module.MIN_COSINE and cosines.max() < 0.99999  # close, not the same network
    again = create_embedder("efficientnet_lite0", size=160).for_queries(lambda: PHOTOS)
    assert again._onnx.path == queries._onnx.path  # made once: a new process finds it in the cache


def test_a_twin_that_strays_from_fp32_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(int8_module, "MIN_COSINE", 1.01)  # no INT8 network is that close
    embedder = create_embedder("efficientnet_lite0", size=160)
    queries = embedder.for_queries(lambda: PHOTOS[:3])
    assert not queries.int8 and queries._onnx is embedder._onnx  # fp32 kept
    assert not list(int8_module.int8_path(embedder._onnx.path, np.zeros(1), embedder._onnx.path.parent).parent.glob(
        "*-int8-*.onnx.*"))  # no half-made file left behind
