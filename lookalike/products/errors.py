"""What loading a product index raises, and the command each message names to rebuild it."""

from __future__ import annotations

import json
import sqlite3
import zipfile
import zlib
from pathlib import Path

MANIFEST = "manifest.json"


class IndexMissingError(FileNotFoundError):
    """No index at the given folder."""


class IndexCorruptError(ValueError):
    """An index folder that exists but cannot be used (a part missing, unreadable or inconsistent)."""


#: What reading a damaged file raises, besides IndexCorruptError (numpy, zip, zlib, SQLite, JSON).
DAMAGED = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, sqlite3.DatabaseError)


def rebuild_hint(folder: Path | str) -> str:
    """The command that rebuilds the index in `folder` (its parked backup names the index it stands for),
    with the catalog its manifest names when it can still be read."""
    folder = Path(folder)
    index_dir, name = folder, folder.name
    if name.startswith(".") and name.endswith(".previous"):
        index_dir = folder.with_name(name[1 : -len(".previous")])
    catalog = "CATALOG"
    try:
        raw = json.loads((folder / MANIFEST).read_text())
        catalog = str(raw.get("catalog") or catalog) if isinstance(raw, dict) else catalog
    except (OSError, ValueError):
        pass
    return f"rebuild it with `lookalike build {catalog} --out {index_dir}` (without --update)"


def damaged(folder: Path, part: str, detail: object) -> IndexCorruptError:
    """The error for a part of the index in `folder` that cannot be read: names the file and the rebuild."""
    return IndexCorruptError(f"product index at {folder}: {part} is damaged ({detail}); {rebuild_hint(folder)}")


def read_part(folder: Path, name: str, read):
    """`read(path)` of the file `name`, which the index cannot do without: missing or damaged, it is reported as
    IndexCorruptError naming it."""
    path = folder / name
    if not path.is_file():
        raise IndexCorruptError(f"product index at {folder} is incomplete: {name} is missing; {rebuild_hint(folder)}")
    try:
        return read(path)
    except IndexCorruptError:
        raise
    except DAMAGED as exc:
        raise damaged(folder, name, exc) from None
