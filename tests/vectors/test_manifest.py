"""The typed manifest base (`lookalike.vectors.manifest.Manifest`): a file reads and writes back byte for
byte (unknown keys, key order, explicit nulls kept), a new one leaves unset optional fields out, and a
foreign, unknown-version, incomplete, missing or garbled file raises the subclass's own error."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lookalike.vectors.manifest import MANIFEST, Manifest


class ToyError(ValueError):
    pass


@dataclass(kw_only=True)
class ToyManifest(Manifest):
    FORMAT_NAME = "toy-index"
    FORMAT_VERSION = 3
    READABLE_VERSIONS = (2, 3)
    KIND = "toy index"

    model: str
    items: int = 0
    notes: list[str] = field(default_factory=list)
    update: dict | None = None
    store: dict

    @classmethod
    def error(cls, folder: Path | str, problem: str) -> ToyError:
        return ToyError(f"{problem}: rebuild the toy")


#: A file in its own key order, with a key this version does not know and an optional field given as null.
WRITTEN = {"format": "toy-index/2", "store": {"kind": "annoy"}, "later_key": {"x": [1, 2]}, "model": "m",
           "update": None, "items": 4, "notes": []}


def _folder(tmp_path: Path, raw: object) -> Path:
    (tmp_path / MANIFEST).write_text(json.dumps(raw, indent=2))
    return tmp_path


def test_a_file_reads_and_writes_back_byte_for_byte(tmp_path: Path) -> None:
    folder = _folder(tmp_path, WRITTEN)
    manifest = ToyManifest.read(folder)
    assert (manifest.format_version, manifest.model, manifest.items, manifest.update) == (2, "m", 4, None)
    assert manifest.extra == {"later_key": {"x": [1, 2]}} and manifest.notes == []
    (tmp_path / "again").mkdir()
    manifest.write(tmp_path / "again")
    assert (tmp_path / "again" / MANIFEST).read_text() == (folder / MANIFEST).read_text()
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == [MANIFEST]  # no temporary file left
    older = ToyManifest.from_dict({key: value for key, value in WRITTEN.items() if key != "notes"})
    assert list(older.to_dict()) == [*WRITTEN]  # a field the file lacked is written after its own keys


def test_a_new_manifest_names_todays_format_and_leaves_unset_optionals_out() -> None:
    manifest = ToyManifest(model="m", store={"kind": "annoy"}, notes=["n"])
    assert manifest.format == "toy-index/3"
    assert manifest.to_dict() == {"format": "toy-index/3", "model": "m", "items": 0, "notes": ["n"],
                                  "store": {"kind": "annoy"}}
    assert ToyManifest.from_dict(manifest.to_dict()) == manifest
    updated = ToyManifest(model="m", store={}, update={"kept": 1}, extra={"later": 1})
    assert list(updated.to_dict()) == ["format", "model", "items", "notes", "update", "store", "later"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({**WRITTEN, "format": "toy-index/4"}, "format version 4, and this lookalike reads version 2, 3"),
        ({**WRITTEN, "format": "toy-index/1"}, "format version 1"),
        ({**WRITTEN, "format": "other-index/3"}, r"is not a toy index of format toy-index/3 \(found 'other-index/3'\)"),
        ({key: value for key, value in WRITTEN.items() if key != "format"}, "not a toy index"),
        ([1, 2], "not a toy index"),
        ({key: value for key, value in WRITTEN.items() if key not in ("model", "store")}, "lacks model, store"),
    ],
)
def test_an_unusable_manifest_raises_the_subclass_error(tmp_path: Path, raw: object, message: str) -> None:
    with pytest.raises(ToyError, match=message) as caught:
        ToyManifest.read(_folder(tmp_path, raw))
    assert str(caught.value).endswith(": rebuild the toy")


def test_a_missing_or_garbled_file_raises_the_subclass_error(tmp_path: Path) -> None:
    with pytest.raises(ToyError, match=f"toy index at {tmp_path} is incomplete: {MANIFEST} is missing"):
        ToyManifest.read(tmp_path)
    (tmp_path / MANIFEST).write_text("{half")
    with pytest.raises(ToyError, match=f"{MANIFEST} is not JSON"):
        ToyManifest.read(tmp_path)
    (tmp_path / MANIFEST).write_bytes(b"\xff\xfe")
    with pytest.raises(ToyError, match="not JSON"):
        ToyManifest.read(tmp_path)
