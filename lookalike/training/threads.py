"""Run small-tensor training on one thread: with batches of 64 rows, a second BLAS thread only adds
synchronisation (a step was many times slower with two on the 2-core build machine while it was busy)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(count: int = 1) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
