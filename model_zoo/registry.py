"""A name -> factory registry in timm's manner, shared by the product and the face models.

Each entry carries a `pretrained_cfg`-like dict (input size, normalisation, metric, threshold, ...)
so callers can ask a model how to feed it and how to read its distances without building it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("product", "face")


class UnknownModelError(KeyError):
    """A model name that is not registered; the message lists the names that are."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class WeightsUnavailableError(RuntimeError):
    """Weights that cannot be loaded here (offline, uncached, or a bad file)."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    factory: Callable[..., Any]
    cfg: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_ENTRIES: dict[tuple[str, str], ModelEntry] = {}


def register(kind: str, name: str, description: str = "", **cfg: Any) -> Callable:
    """Decorator: register `factory(weights=None, **kwargs)` under `name` for `kind`."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
        _ENTRIES[(kind, name)] = ModelEntry(name, kind, factory, dict(cfg), description)
        return factory

    return wrap


def list_models(kind: str) -> list[str]:
    return sorted(name for k, name in _ENTRIES if k == kind)


def get_entry(kind: str, name: str) -> ModelEntry:
    try:
        return _ENTRIES[(kind, name)]
    except KeyError:
        known = ", ".join(list_models(kind))
        raise UnknownModelError(f"unknown {kind} model {name!r}; registered: {known}") from None
