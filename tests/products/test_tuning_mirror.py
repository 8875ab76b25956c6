"""The tuning's frozen pass without the mirror pass (`tuning_policy.MIRROR_PASS` False, issue 37): the vectors'
mirror half comes from the photo's maps flipped, and nothing runs the mirror image through the frozen stages."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from lookalike.products.backbone_tuning import FrozenMaps, Tail, tail_vectors  # noqa: E402


def _tail() -> Tail:
    torch.manual_seed(0)
    return Tail(timm.create_model("efficientnet_lite0", pretrained=False), 2).eval()


def test_without_a_mirror_pass_the_flipped_maps_stand_in() -> None:
    tail = _tail()
    maps = torch.randn(5, 112, 8, 8).half()
    found = tail_vectors(tail, FrozenMaps(maps, None, list(range(5)), []), "cpu")
    with_flipped = tail_vectors(tail, FrozenMaps(maps, maps.flip(-1), list(range(5)), []), "cpu")
    np.testing.assert_allclose(found, with_flipped, atol=1e-6)
    assert np.allclose(np.linalg.norm(found, axis=1), 1.0, atol=1e-5)
    alone = tail_vectors(tail, FrozenMaps(maps, maps, list(range(5)), []), "cpu")  # the photo twice: no mirror
    assert not np.allclose(found, alone, atol=1e-4)
