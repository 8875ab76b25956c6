"""A catalog folder that is edited in place (the app's Manage tab and API): add a photo, change an item's
fields, remove an item, each change durable before it is acknowledged.

Layout, which `lookalike build DIR --manifest DIR/manifest.csv` (or `lookalike build DIR/manifest.csv`)
reads as any catalog, so a full rebuild gives the same index as the app's updates:

    DIR/manifest.csv            item_id,path,category,title,price,url,product_id (+ any columns it had)
    DIR/<category>/<item_id>.jpg  a photo added here (its bytes as sent; adopted photos keep their names)
    DIR/audit.jsonl             one JSON line per change: when, who (never a token), what

A change writes the photo under a hidden temporary name, fsyncs and renames it; then the manifest the same way
(a new file, fsynced, renamed over the old, the folder fsynced); then appends its audit line and fsyncs it.
A kill at any moment leaves the manifest old or new, never half; a photo the manifest does not name (an add
killed before its manifest, a removal killed after it) is deleted at the next open (`recover`). Changes are
serialised by a thread lock and an `flock` on `DIR/.catalog.lock`, so two admins, or two processes, never lose
one another's change.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from lookalike.products.catalog import OPTIONAL_FIELDS, read_catalog

MANIFEST, AUDIT, LOCK = "manifest.csv", "audit.jsonl", ".catalog.lock"
COLUMNS = ("item_id", "path", "category", *OPTIONAL_FIELDS)
EDITABLE = ("category", *OPTIONAL_FIELDS)
#: Longest value of each field (a title is a line, not a page).
LIMITS = {"category": 64, "title": 300, "price": 32, "url": 2000, "product_id": 128}
_CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _&+.-]*$")
_NEW_ID = re.compile(r"^p[0-9a-f]{12}$")  # the ids (and file names) this module gives photos it adds
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}


class UnknownItemError(KeyError):
    """No item of the catalog has this id."""

    def __str__(self) -> str:
        return f"no catalog item has the id {self.args[0]!r}"


def _fsync_dir(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _write_atomic(target: Path, data: bytes) -> None:
    """`data` into `target` or nothing: a hidden file beside it, fsynced, renamed over it, the folder fsynced."""
    temporary = target.with_name(f".tmp-{os.getpid()}-{target.name}")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    _fsync_dir(target.parent)


def clean_fields(fields: dict, partial: bool = False) -> dict[str, str]:
    """The editable fields, stripped and checked; ValueError naming the first bad one. `partial`: only those given."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}: an item has {', '.join(EDITABLE)}")
    out = {}
    for name in EDITABLE:
        if name not in fields and partial:
            continue
        value = str(fields.get(name) or "").strip()
        if len(value) > LIMITS[name] or any(char in value for char in "\r\n\t\0"):
            raise ValueError(f"{name} must be one line of at most {LIMITS[name]} characters")
        out[name] = value
    if "category" in out and (not _CATEGORY.match(out["category"]) or out["category"] in {".", ".."}):
        raise ValueError("category must be a name of letters, digits, spaces or _&+.- (it names a folder)")
    if out.get("url") and not out["url"].startswith(("http://", "https://")):
        raise ValueError("url must start with http:// or https://")
    return out


class EditableCatalog:
    """The catalog at `folder` (see the module's docstring), opened and recovered."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder).resolve()
        self.manifest = self.folder / MANIFEST
        self._lock = threading.Lock()
        self._rows = self._read()
        self._digests: dict[str, str] | None = None  # sha256 -> item id, read on first use
        self.recover()

    @classmethod
    def open(cls, folder: Path, seed: Path | None = None) -> EditableCatalog:
        """The catalog at `folder`; one without an item_id manifest is adopted first (its photos listed, with
        any manifest.csv's fields, ids = file names), and a missing or empty one starts as a copy of `seed`
        (a catalog folder with a manifest.csv, e.g. the bundled demo's, which is never written)."""
        folder = Path(folder)
        if folder.suffix.lower() == ".csv" or folder.is_file():
            raise ValueError(f"a managed catalog is a folder, not a file: {folder}")
        if not _has_ids(folder / MANIFEST):
            if (not folder.is_dir() or not any(folder.iterdir())) and seed is not None:
                _copy_catalog(seed, folder)
            _adopt(folder)
        return cls(folder)

    def _read(self) -> list[dict[str, str]]:
        with self.manifest.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    def recover(self) -> list[Path]:
        """Delete what a killed change left: temporary files, and photos this module added that no row names."""
        named = {(self.folder / row["path"]).resolve() for row in self._rows}
        removed = []
        for path in self.folder.glob("*/*"):
            if path.name.startswith(".tmp-") or (_NEW_ID.match(path.stem) and path.resolve() not in named):
                path.unlink(missing_ok=True)
                removed.append(path)
        for path in self.folder.glob(".tmp-*"):
            path.unlink(missing_ok=True)
        return removed

    # reading
    def rows(self) -> list[dict[str, str]]:
        return [dict(row) for row in self._rows]

    def get(self, item_id: str) -> dict[str, str]:
        for row in self._rows:
            if row["item_id"] == item_id:
                return dict(row)
        raise UnknownItemError(item_id)

    def item_for_photo(self, photo: str) -> str | None:
        """The item whose photo is `photo` (a search hit's path relative to the catalog, or absolute)."""
        wanted = (self.folder / photo).resolve()
        return next((row["item_id"] for row in self._rows if (self.folder / row["path"]).resolve() == wanted), None)

    def same_content(self, data: bytes) -> str | None:
        """The item whose photo file has exactly these bytes, if any."""
        with self._lock:
            if self._digests is None:
                self._digests = {}
                for row in self._rows:
                    path = self.folder / row["path"]
                    if path.is_file():
                        self._digests.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), row["item_id"])
            return self._digests.get(hashlib.sha256(data).hexdigest())

    # changing
    @contextmanager
    def _change(self) -> Iterator[None]:
        with self._lock, open(self.folder / LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._rows = self._read()  # another process may have changed it
            yield

    def add(self, data: bytes, image_format: str, fields: dict, who: dict) -> str:
        """Write the photo (`data`, a decoded image's bytes in `image_format`) and its row; its new item id."""
        fields = clean_fields(fields)
        item_id = f"p{secrets.token_hex(6)}"
        relative = f"{fields['category']}/{item_id}{SUFFIXES.get(image_format, '.img')}"
        with self._change():
            folder = self.folder / fields["category"]
            if not folder.is_dir():
                folder.mkdir()
                _fsync_dir(self.folder)
            _write_atomic(self.folder / relative, data)
            self._commit([*self._rows, {"item_id": item_id, "path": relative, **fields}])
            self._audit(who, "add", item_id, {"path": relative, **fields})
            if self._digests is not None:
                self._digests.setdefault(hashlib.sha256(data).hexdigest(), item_id)
        return item_id

    def update(self, item_id: str, fields: dict, who: dict) -> dict[str, str]:
        """Change some of an item's fields (a new category moves its photo); the row as it is now."""
        fields = clean_fields(fields, partial=True)
        with self._change():
            rows = self._rows
            number = next((n for n, row in enumerate(rows) if row["item_id"] == item_id), None)
            if number is None:
                raise UnknownItemError(item_id)
            before, row = rows[number], {**rows[number], **fields}
            old = self.folder / before["path"]
            if fields.get("category", before["category"]) != before["category"]:
                target = self.folder / fields["category"] / Path(before["path"]).name
                if target.exists():
                    raise ValueError(f"{fields['category']} already holds a photo named {target.name}")
                target.parent.mkdir(exist_ok=True)
                os.link(old, target)  # both names until the manifest is committed; the old one goes after
                _fsync_dir(target.parent)
                row["path"] = str(target.relative_to(self.folder))
            self._commit([*rows[:number], row, *rows[number + 1:]])
            changed = {name: row[name] for name in row if row[name] != before.get(name)}
            self._audit(who, "update", item_id, changed)
            if row["path"] != before["path"]:
                old.unlink(missing_ok=True)
        return dict(row)

    def remove(self, item_id: str, who: dict) -> None:
        with self._change():
            row = next((row for row in self._rows if row["item_id"] == item_id), None)
            if row is None:
                raise UnknownItemError(item_id)
            self._commit([other for other in self._rows if other["item_id"] != item_id])
            self._audit(who, "remove", item_id, {"path": row["path"]})
            photo = self.folder / row["path"]
            if self._digests is not None and photo.is_file():
                self._digests.pop(hashlib.sha256(photo.read_bytes()).hexdigest(), None)
            if photo.resolve().is_relative_to(self.folder):  # the row is gone: its photo goes too
                photo.unlink(missing_ok=True)

    def _commit(self, rows: list[dict[str, str]]) -> None:
        columns = list(COLUMNS) + [key for row in rows for key in row if key not in COLUMNS]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(columns)), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        _write_atomic(self.manifest, buffer.getvalue().encode("utf-8"))
        self._rows = rows

    def _audit(self, who: dict, action: str, item_id: str, what: dict) -> None:
        line = {"at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "who": who, "action": action,
                "item_id": item_id, "what": what}
        with open(self.folder / AUDIT, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def _has_ids(manifest: Path) -> bool:
    if not manifest.is_file():
        return False
    with manifest.open(newline="", encoding="utf-8") as handle:
        return "item_id" in (csv.DictReader(handle).fieldnames or [])


def _copy_catalog(seed: Path, folder: Path) -> None:
    """`seed`'s photos and manifest into `folder`, photos at <category>/<name> (its manifest's paths rewritten)."""
    import shutil

    items = read_catalog(seed, seed / MANIFEST if (seed / MANIFEST).is_file() else None)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for item in items:
        target = folder / item.category / item.path.name
        target.parent.mkdir(exist_ok=True)
        shutil.copy2(item.path, target)
        rows.append({"path": f"{item.category}/{item.path.name}", "category": item.category,
                     **{name: getattr(item, name) for name in OPTIONAL_FIELDS}})
    _write_rows(folder, rows)


def _adopt(folder: Path) -> None:
    """Give every item of the catalog folder an id (its file name, made unique), in a new manifest."""
    manifest = folder / MANIFEST
    items = read_catalog(folder, manifest if manifest.is_file() else None)
    rows, taken = [], set()
    for item in items:
        relative = item.path.resolve().relative_to(folder.resolve())
        item_id = item.path.stem if item.path.stem not in taken else f"{item.category}-{item.path.stem}"
        while item_id in taken:
            item_id += "-1"
        taken.add(item_id)
        rows.append({"item_id": item_id, "path": str(relative), "category": item.category,
                     **{name: getattr(item, name) for name in OPTIONAL_FIELDS}})
    _write_rows(folder, rows)


def _write_rows(folder: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[c for c in COLUMNS if c in rows[0]], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_atomic(folder / MANIFEST, buffer.getvalue().encode("utf-8"))
