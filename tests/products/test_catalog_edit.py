"""The editable catalog: every change durable and whole, serialised, audited; a killed change leaves no trace."""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path

import pytest
from PIL import Image

from lookalike.products import catalog_edit
from lookalike.products.catalog import read_catalog
from lookalike.products.catalog_edit import AUDIT, MANIFEST, EditableCatalog, UnknownItemError

WHO = {"role": "admin", "via": "test", "session": "s1", "client": None}


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, "JPEG")
    return buffer.getvalue()


def _added(folder: Path) -> list[Path]:
    return [path for path in folder.glob("*/*.jpg") if catalog_edit._NEW_ID.match(path.stem)]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for category, count in (("milk", 2), ("juice", 1)):
        (tmp_path / "shop" / category).mkdir(parents=True)
        for n in range(count):
            (tmp_path / "shop" / category / f"photo{n}.jpg").write_bytes(_jpeg((n * 60, 10, 200)))
    return tmp_path / "shop"


def test_a_catalog_folder_is_adopted_and_a_build_reads_it(folder: Path) -> None:
    catalog = EditableCatalog.open(folder)
    assert sorted(row["item_id"] for row in catalog.rows()) == ["milk-photo0", "photo0", "photo1"]
    item = catalog.add(_jpeg((1, 2, 3)), "JPEG", {"category": "tea", "title": "Green tea", "price": "3"}, WHO)
    items = read_catalog(folder, folder / MANIFEST)  # what `lookalike build DIR --manifest DIR/manifest.csv` reads
    assert len(items) == 4 and {i.path.name: i.title for i in items}[f"{item}.jpg"] == "Green tea"
    assert read_catalog(folder / MANIFEST)[-1].category == "tea"  # the manifest alone, too


def test_changes_are_applied_audited_and_survive_a_reopen(folder: Path) -> None:
    catalog = EditableCatalog.open(folder)
    item = catalog.add(_jpeg((9, 9, 9)), "JPEG", {"category": "milk", "title": "Oat"}, WHO)
    catalog.update(item, {"title": "Oat drink", "category": "oat-milk"}, WHO)
    catalog.remove("photo0", WHO)
    again = EditableCatalog.open(folder)
    row = again.get(item)
    assert row["title"] == "Oat drink" and row["path"] == f"oat-milk/{item}.jpg"
    assert (folder / row["path"]).is_file() and not (folder / "milk" / f"{item}.jpg").exists()
    assert not (folder / "juice" / "photo0.jpg").exists()  # juice/photo0 came first: its id is photo0
    with pytest.raises(UnknownItemError):
        again.get("photo0")
    audit = [json.loads(line) for line in (folder / AUDIT).read_text().splitlines()]
    assert [(a["action"], a["item_id"]) for a in audit] == [("add", item), ("update", item), ("remove", "photo0")]
    assert audit[0]["who"] == WHO and audit[1]["what"] == {"title": "Oat drink", "category": "oat-milk",
                                                            "path": f"oat-milk/{item}.jpg"}


@pytest.mark.parametrize("fields, message", [
    ({"category": "../etc"}, "category must be"), ({"category": ""}, "category must be"),
    ({"category": "milk", "url": "javascript:alert(1)"}, "url must start"),
    ({"category": "milk", "title": "a\nb"}, "one line"), ({"category": "milk", "colour": "red"}, "unknown field"),
])
def test_bad_fields_are_refused_and_nothing_is_written(folder: Path, fields: dict, message: str) -> None:
    catalog = EditableCatalog.open(folder)
    before = (folder / MANIFEST).read_bytes()
    with pytest.raises(ValueError, match=message):
        catalog.add(_jpeg((5, 5, 5)), "JPEG", fields, WHO)
    assert (folder / MANIFEST).read_bytes() == before and not (folder / AUDIT).exists()


def test_a_change_killed_before_its_manifest_leaves_nothing(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = EditableCatalog.open(folder)
    before = (folder / MANIFEST).read_bytes()

    def killed(rows):
        raise SystemExit("killed")  # the process dies after writing the photo, before the manifest

    monkeypatch.setattr(catalog, "_commit", killed)
    with pytest.raises(SystemExit):
        catalog.add(_jpeg((7, 7, 7)), "JPEG", {"category": "milk"}, WHO)
    assert len(_added(folder)) == 1  # the half-added photo
    (folder / "milk" / ".tmp-1-x.jpg").write_bytes(b"partial")
    reopened = EditableCatalog.open(folder)
    assert not _added(folder) and not list(folder.rglob(".tmp-*"))
    assert (folder / MANIFEST).read_bytes() == before and len(reopened.rows()) == 3


def test_two_admins_at_once_are_serialised_not_lost(folder: Path) -> None:
    first, second = EditableCatalog.open(folder), EditableCatalog(folder)  # two processes' views of one folder
    ids: list[str] = []

    def add(catalog: EditableCatalog, shade: int) -> None:
        for n in range(10):
            ids.append(catalog.add(_jpeg((shade, n * 20, 0)), "JPEG", {"category": "milk"}, WHO))

    threads = [threading.Thread(target=add, args=(catalog, shade)) for catalog, shade in ((first, 50), (second, 150))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with (folder / MANIFEST).open(newline="") as handle:
        listed = {row["item_id"] for row in csv.DictReader(handle)}
    assert set(ids) <= listed and len(listed) == 3 + 20
    assert len((folder / AUDIT).read_text().splitlines()) == 20


def test_a_new_folder_starts_as_a_copy_of_the_seed_which_is_never_written(folder: Path, tmp_path: Path) -> None:
    EditableCatalog.open(folder)  # the seed now has a manifest.csv of its own
    seed_files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    copy = EditableCatalog.open(tmp_path / "mine", seed=folder)
    copy.remove(copy.rows()[0]["item_id"], WHO)
    copy.add(_jpeg((3, 3, 3)), "JPEG", {"category": "milk"}, WHO)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == seed_files
    assert len(copy.rows()) == 3 and all((copy.folder / row["path"]).is_file() for row in copy.rows())


def test_same_content_finds_the_item_with_those_bytes(folder: Path) -> None:
    catalog = EditableCatalog.open(folder)
    assert catalog.same_content((folder / "milk" / "photo1.jpg").read_bytes()) == "photo1"
    data = _jpeg((200, 1, 1))
    item = catalog.add(data, "JPEG", {"category": "milk"}, WHO)
    assert catalog.same_content(data) == item
    catalog.remove(item, WHO)
    assert catalog.same_content(data) is None
    assert catalog_edit.clean_fields({"category": " milk "})["category"] == "milk"
