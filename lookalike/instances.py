"""One object per key, made on first use and shared by every thread after: the loaded searchers and
verifiers of the one-call API and of the app (a model or an index loads in seconds, so never twice)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Instances(Generic[K, V]):
    """A lock-guarded map from key to the object `make(key)` returned the first time it was asked for.

    >>> squares = Instances(lambda n: n * n)
    >>> squares.get(4), len(squares)
    (16, 1)
    """

    def __init__(self, make: Callable[[K], V]) -> None:
        self._make = make
        self._made: dict[K, V] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V:
        with self._lock:
            if key not in self._made:
                self._made[key] = self._make(key)
            return self._made[key]

    def __len__(self) -> int:
        return len(self._made)

    def __iter__(self) -> Iterator[V]:
        with self._lock:
            return iter(list(self._made.values()))
