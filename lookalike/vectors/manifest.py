"""manifest.json of an index folder, typed: the base every kind of index (the product index, a face gallery)
declares its manifest on, so each parses, checks and rewrites its file the same way.

A subclass is a `@dataclass(kw_only=True)` naming its fields in the order the file lists them, and says
what it is: `FORMAT_NAME`, `FORMAT_VERSION`, `READABLE_VERSIONS`, `KIND` (for messages) and `error` (the
exception a damaged or foreign manifest raises, with what to do about it). The base then gives it:

- `format` written as "<FORMAT_NAME>/<version>" and checked on reading against `READABLE_VERSIONS`;
- the fields without a default required (a file lacking one is damaged);
- keys this version does not know kept in `extra`, and the file's key order in `order`, so rewriting a
  manifest (installing a head, a later version's file) loses nothing: a file holding every field writes back
  byte for byte (a field it lacked is added, with its default, after the file's own keys);
- fields whose default is None left out while None (an index built without that part), unless the file
  read gave them as null;
- `write` atomic (a reader sees the old file or the new one), and written last by the builder: a folder
  without its manifest is not a finished index (`lookalike.vectors.index_writer`).
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

__all__ = ["MANIFEST", "Manifest"]

#: The file every index folder is finished by.
MANIFEST = "manifest.json"
#: The base's own fields: bookkeeping, not keys of the file.
_NOT_KEYS = frozenset({"format_version", "extra", "order"})
M = TypeVar("M", bound="Manifest")


@dataclass(kw_only=True)
class Manifest:
    """The base of a typed manifest.json (see the module's docstring for what a subclass declares)."""

    FORMAT_NAME: ClassVar[str]
    FORMAT_VERSION: ClassVar[int]
    READABLE_VERSIONS: ClassVar[tuple[int, ...]]
    KIND: ClassVar[str] = "index"  # what the folder is called in messages: "product index", "face gallery"

    format_version: int = 0  # the layout version the file was written in; 0: this code's FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they were
    order: list[str] = field(default_factory=list, compare=False, repr=False)  # the file's key order

    def __post_init__(self) -> None:
        if not self.format_version:
            self.format_version = self.FORMAT_VERSION

    @classmethod
    def error(cls, folder: Path | str, problem: str) -> Exception:
        """The exception for a manifest that cannot be used; `problem` says what is wrong (a subclass raises
        its own error type and adds how to rebuild)."""
        return ValueError(problem)

    @property
    def format(self) -> str:
        return f"{self.FORMAT_NAME}/{self.format_version}"

    def to_dict(self) -> dict[str, Any]:
        """The manifest as the file holds it: the file's own key order, new keys after (`format` first)."""
        raw: dict[str, Any] = {"format": self.format}
        optional = _optional(type(self))
        for name, value in asdict(self).items():
            if name in _NOT_KEYS or (value is None and name in optional and name not in self.order):
                continue
            raw[name] = value
        raw.update(self.extra)
        place = {key: i for i, key in enumerate(self.order)}
        return dict(sorted(raw.items(), key=lambda item: place.get(item[0], len(place))))

    @classmethod
    def from_dict(cls: type[M], raw: object, folder: Path | str = "the index") -> M:
        """Parse the file's content. Raises `error` for a foreign or unreadable format, or a missing field."""
        version = cls._format_version(raw, folder)
        assert isinstance(raw, dict)
        known = {f.name for f in fields(cls)} - _NOT_KEYS
        if missing := [f.name for f in fields(cls) if f.name in known and f.default is MISSING
                       and f.default_factory is MISSING and f.name not in raw]:
            raise cls.error(folder, f"{cls.KIND} at {folder}: {MANIFEST} lacks {', '.join(missing)}")
        given = {name: value for name, value in raw.items() if name in known}
        extra = {name: value for name, value in raw.items() if name not in known and name != "format"}
        return cls(format_version=version, **given, extra=extra, order=list(raw))

    @classmethod
    def _format_version(cls, raw: object, folder: Path | str) -> int:
        """The layout version a manifest's `format` names, if this reader reads it."""
        found = raw.get("format") if isinstance(raw, dict) else None
        name, _, version = found.rpartition("/") if isinstance(found, str) else ("", "", "")
        if name != cls.FORMAT_NAME or not version.isdigit():
            current = f"{cls.FORMAT_NAME}/{cls.FORMAT_VERSION}"
            raise cls.error(folder, f"{folder} is not a {cls.KIND} of format {current} (found {found!r})")
        if int(version) not in cls.READABLE_VERSIONS:
            readable = ", ".join(map(str, cls.READABLE_VERSIONS))
            raise cls.error(folder, f"{folder} is a {cls.KIND} of format version {version}, and this lookalike "
                                    f"reads version {readable}")
        return int(version)

    @classmethod
    def read(cls: type[M], folder: Path | str) -> M:
        """The manifest of the index `folder` (the folder itself, not `index_folder.locate`d).

        Raises:
            `error`: the file is missing, unreadable, not JSON, of another format or version, or lacks a field.
        """
        folder = Path(folder)
        try:
            raw = json.loads((folder / MANIFEST).read_bytes())
        except FileNotFoundError:
            raise cls.error(folder, f"{cls.KIND} at {folder} is incomplete: {MANIFEST} is missing") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise cls.error(folder, f"{cls.KIND} at {folder}: {MANIFEST} is not JSON ({exc})") from None
        except OSError as exc:
            raise cls.error(folder, f"{cls.KIND} at {folder}: {MANIFEST} is damaged ({exc})") from None
        return cls.from_dict(raw, folder)

    def write(self, folder: Path | str) -> None:
        """Write the manifest into `folder` atomically (a reader sees the old file or the new one)."""
        path = Path(folder) / MANIFEST
        tmp = path.with_name(f".{path.name}.writing")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        os.replace(tmp, path)


def _optional(cls: type[Manifest]) -> set[str]:
    """The fields an index may lack: those whose default is None."""
    return {f.name for f in fields(cls) if f.default is None}
