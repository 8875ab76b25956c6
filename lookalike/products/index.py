"""The on-disk product index: what a build writes and a searcher loads, and nothing else. This module is the
one place the parts of an index folder are named (the constants below) and the manifest is typed
(`IndexManifest`); every other module reaches a part through them.

    INDEX_DIR/
      manifest.json   MANIFEST: `IndexManifest` (format version, model config, dim, counts, head accuracy,
                      versions, skipped files, and `store`: which vector store holds the vectors)
      catalog.sqlite  CATALOG: one row per indexed photo, keyed by its stable item id (the metadata store)
      head.npz        HEAD: the category head
      head_views.npz  HEAD_VIEWS: item ids and their vectors from the head's second backbone, if it has one: what
                      an update refits the head on without embedding the kept photos again (search needs none)
      thumbs/<id>.jpg THUMBNAILS: gallery thumbnails
      local/          LOCAL_FEATURES: every photo's SIFT keypoints, if built with them (`local_features`)
      words.json      WORDS: the words printed on every photo, if built with them (`printed_words`)
      annoy/ or milvus/   the vectors, when the store lives in the folder (a Milvus server holds its own); each
                      store names its own folder (`lookalike.vectors.stores`)

The folder's life cycle (one writer at a time, built beside it, swapped in atomically, found again after a
crash, a new generation per swap) is `lookalike.vectors.index_folder`'s, with `MANIFEST` as the file written
last; it also keeps the folder's generation in `index_folder.GENERATION`.

Rows are read from SQLite when a query needs them, and the vectors stay in the store (memory-mapped
or on a Milvus server), so a large catalog costs the app little memory. Every file is opened while the index
loads (and read again should a build swap the folder meanwhile), so a searcher keeps reading the folder it
loaded even after a build replaced it. Loading checks that every part is present, readable and consistent,
and fails with `IndexMissingError` or `IndexCorruptError` (subclasses of FileNotFoundError / ValueError)
naming the damaged file and the command that rebuilds the index (`rebuild_hint`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.products.heads import CategoryHead
from lookalike.products.mlp_head import MlpCategoryHead, load_head
from lookalike.vectors import index_folder
from lookalike.vectors.stores import VectorStore, open_store

MANIFEST = "manifest.json"
CATALOG = "catalog.sqlite"
HEAD = "head.npz"
HEAD_VIEWS = "head_views.npz"
THUMBNAILS = "thumbs"  # folder of <id>.jpg
LOCAL_FEATURES = "local"  # folder of .npy arrays (`local_features`)
WORDS = "words.json"
TUNED_BACKBONE = "backbone.pt"  # the backbone tuned on the catalog at build time (`tuning`), if it was
#: The manifest's `format` names the kind of folder and the version of its layout ("lookalike.product-index/2").
FORMAT_NAME = "lookalike.product-index"
#: 2: item ids and a pluggable vector store. A reader reads the versions in READABLE_VERSIONS.
FORMAT_VERSION = 2
READABLE_VERSIONS = (2,)
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
REBUILD = "rebuild it with `lookalike build CATALOG --out INDEX` (or index_builder.py)"
ROW_FIELDS = ("id", "path", "category", "title", "price", "url", "product_id", "width", "height", "sha256")


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


@dataclass(kw_only=True)
class IndexManifest:
    """manifest.json, typed: what the build recorded about the index, written last (a folder without it is
    not a finished index). Fields in the order the file lists them; those an index may lack are None (left out
    of the file), and keys this version does not know are kept in `extra`, so rewriting a manifest (installing
    a head) loses nothing.
    """

    format_version: int = FORMAT_VERSION
    model: str
    embedder: dict  # the product embedder's config (`model_zoo.create_embedder(**embedder)`)
    dim: int
    metric: str = "cosine"
    items: int
    counts: dict[str, int]  # photos per category
    category_order: list[str]  # the head's classes
    head: dict  # kind, held-out accuracy, ..., and `view`: the second backbone's config, if it reads one
    neighbour_vote: dict | None = None  # `heads.NeighbourVote` settings; None: the head alone
    catalog: str = ""
    engine: str = "local"
    cache_hits: int = 0
    skipped_count: int = 0
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"} of each unreadable file
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    update: dict | None = None  # an update's kept / added / removed counts
    thumbnails: int = 0  # thumbnails written (THUMBNAILS)
    store: dict  # the store's entry (`lookalike.vectors.stores.open_store`), with the `address` built from
    local_features: dict | None = None  # `local_features.write_local_features`'s entry, if built with them
    words: dict | None = None  # `printed_words.write_words`'s entry, if built with them
    similarity: dict | None = None  # `calibration.SimilarityCalibration`'s curve; None: the linear mapping
    tuning: dict | None = None  # `tuning.tune_catalog`'s entry when the backbone was tuned (TUNED_BACKBONE)
    build_seconds: float | None = None
    images_per_second: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def head_view(self) -> dict | None:
        """The config of the second backbone the category head reads beside the index's vectors, if any."""
        return self.head.get("view")

    def embedder_config(self, folder: Path) -> dict:
        """The product embedder's config for `model_zoo.create_embedder(**config)`: a tuned index's weights are
        its own TUNED_BACKBONE in `folder` (where the index is now, so a moved index still loads)."""
        if self.tuning is None:
            return dict(self.embedder)
        return {**self.embedder, "weights": str(Path(folder) / TUNED_BACKBONE)}

    def to_dict(self) -> dict:
        """The manifest as manifest.json holds it."""
        raw = {"format": f"{FORMAT_NAME}/{self.format_version}"}
        for name, value in asdict(self).items():
            if name not in ("format_version", "extra") and not (value is None and name in _OPTIONAL):
                raw[name] = value
        return {**raw, **self.extra}

    @classmethod
    def from_dict(cls, raw: object, folder: Path | str = "the index") -> IndexManifest:
        """Parse manifest.json's content; raises IndexCorruptError for a foreign or unknown format (with what
        to do) or a missing field."""
        version = _format_version(raw, folder)
        raw = dict(raw)
        del raw["format"]
        known = {f.name for f in fields(cls)} - {"format_version", "extra"}
        if missing := [f.name for f in fields(cls) if f.name in _REQUIRED and f.name not in raw]:
            raise IndexCorruptError(f"product index at {folder}: {MANIFEST} lacks {', '.join(missing)}: {REBUILD}")
        given = {name: value for name, value in raw.items() if name in known}
        return cls(format_version=version, **given, extra={k: v for k, v in raw.items() if k not in known})

    @classmethod
    def read(cls, folder: Path) -> IndexManifest:
        """The manifest of the index `folder` (the folder itself, not `locate`d).

        Raises:
            IndexCorruptError: the file is missing, not JSON, of another format or version, or lacks a field.
        """
        folder = Path(folder)
        try:
            raw = json.loads(_part(folder, MANIFEST).read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexCorruptError(f"product index at {folder}: {MANIFEST} is not JSON ({exc}); "
                                    f"{rebuild_hint(folder)}") from None
        except OSError as exc:
            raise damaged(folder, MANIFEST, exc) from None
        return cls.from_dict(raw, folder)

    def write(self, folder: Path) -> None:
        """Write the manifest into `folder` atomically (a reader sees the old file or the new one)."""
        path = Path(folder) / MANIFEST
        tmp = path.with_name(f".{path.name}.writing")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        os.replace(tmp, path)


_REQUIRED = {f.name for f in fields(IndexManifest) if f.default is MISSING and f.default_factory is MISSING}
_OPTIONAL = {f.name for f in fields(IndexManifest) if f.default is None}


def _format_version(raw: object, folder: Path | str) -> int:
    """The layout version a manifest's `format` names, if this reader reads it."""
    found = raw.get("format") if isinstance(raw, dict) else None
    name, _, version = found.rpartition("/") if isinstance(found, str) else ("", "", "")
    if name != FORMAT_NAME or not version.isdigit():
        raise IndexCorruptError(f"{folder} is not a product index of format {FORMAT} (found {found!r}): {REBUILD}")
    if int(version) not in READABLE_VERSIONS:
        raise IndexCorruptError(
            f"{folder} is a product index of format version {version}, and this lookalike reads version "
            f"{', '.join(map(str, READABLE_VERSIONS))}: {REBUILD}"
        )
    return int(version)


def read_manifest(folder: Path) -> IndexManifest:
    """`IndexManifest.read`."""
    return IndexManifest.read(folder)


def write_head_views(folder: Path, ids: Sequence[int], vectors: np.ndarray) -> None:
    """Each item id's vector from the head's second backbone, as `read_head_views` reads it (`HEAD_VIEWS`)."""
    np.savez(Path(folder) / HEAD_VIEWS, ids=np.asarray(ids, np.int64), vectors=vectors)


def read_head_views(folder: Path) -> dict[int, np.ndarray]:
    """Item id -> its vector from the head's second backbone (`HEAD_VIEWS`). Raises OSError, ValueError or
    KeyError when the file is missing or damaged."""
    with np.load(Path(folder) / HEAD_VIEWS, allow_pickle=False) as stored:
        return dict(zip(stored["ids"].tolist(), stored["vectors"], strict=True))


def backup_dir(index_dir: Path) -> Path:
    """Where a build parks the previous index while swapping in the new one (`index_folder.backup_dir`)."""
    return index_folder.backup_dir(index_dir)


def locate(index_dir: Path) -> Path:
    """The folder to load: the index itself, or the parked previous one if a swap was interrupted."""
    try:
        return index_folder.locate(Path(index_dir), MANIFEST)
    except FileNotFoundError:
        raise IndexMissingError(f"no product index at {index_dir} (build one with index_builder.py)") from None


def index_exists(index_dir: Path) -> bool:
    """Whether a finished product index is there to load at `index_dir`."""
    return index_folder.exists(Path(index_dir), MANIFEST)


def write_head(folder: Path, head: CategoryHead) -> None:
    head.save(Path(folder) / HEAD)


def write_rows(folder: Path, rows: list[dict]) -> None:
    """The catalog's rows (each a dict of ROW_FIELDS) into `folder`'s CATALOG."""
    db = sqlite3.connect(Path(folder) / CATALOG)
    with db:
        db.execute(
            "CREATE TABLE products (id INTEGER PRIMARY KEY, path TEXT NOT NULL, category TEXT NOT NULL, "
            "title TEXT, price TEXT, url TEXT, product_id TEXT, width INTEGER, height INTEGER, sha256 TEXT)"
        )
        db.executemany(
            f"INSERT INTO products VALUES ({', '.join('?' * len(ROW_FIELDS))})",
            [tuple(row[f] for f in ROW_FIELDS) for row in rows],
        )
    db.close()


class CatalogRows:
    """catalog.sqlite, read on demand: a query needs 30 rows, not the whole catalog in memory.

    One read-only connection, opened at load and shared by every thread under a lock (a query's read takes
    well under a millisecond): it keeps reading the file this index was loaded from after a build swapped a
    new folder in, where a connection opened later by path would read the new catalog beside the old
    vectors. A read SQLite finds damaged raises IndexCorruptError naming the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._connection: sqlite3.Connection | None = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
            )
        except sqlite3.DatabaseError as exc:
            raise damaged(self.path.parent, self.path.name, exc) from None
        self._connection.row_factory = sqlite3.Row
        self.count = self._query("SELECT COUNT(*) FROM products")[0][0]

    def _query(self, sql: str, parameters: Sequence = ()) -> list[sqlite3.Row]:
        with self._lock:
            if self._connection is None:
                raise IndexCorruptError(f"the catalog at {self.path} was closed (its index was replaced)")
            try:
                return self._connection.execute(sql, parameters).fetchall()
            except sqlite3.DatabaseError as exc:
                raise damaged(self.path.parent, self.path.name, exc) from None

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __len__(self) -> int:
        return self.count

    def get(self, ids: Sequence[int]) -> list[dict]:
        """The rows of `ids`, in that order."""
        wanted = [int(i) for i in ids]
        query = f"SELECT * FROM products WHERE id IN ({','.join('?' * len(wanted))})"
        found = {row["id"]: dict(row) for row in self._query(query, wanted)}
        if missing := [i for i in wanted if i not in found]:
            raise IndexCorruptError(f"the catalog at {self.path} lacks item {missing[0]}, which the vector store holds")
        return [found[i] for i in wanted]

    def __iter__(self) -> Iterator[dict]:
        """Every row in id order, streamed a page at a time (the lock is not held between pages)."""
        last = -(2**63)
        while page := self._query("SELECT * FROM products WHERE id > ? ORDER BY id LIMIT 5000", (last,)):
            yield from (dict(row) for row in page)
            last = page[-1]["id"]

    def first_per_category(self, count: int) -> list[str]:
        """The photo of the lowest id in each of the first `count` categories (by name)."""
        query = ("SELECT path FROM products WHERE id IN (SELECT MIN(id) FROM products GROUP BY category) "
                 "ORDER BY category LIMIT ?")
        return [path for (path,) in self._query(query, (count,))]

    def folders(self) -> list[str]:
        """The folders holding the catalog's photos (rtrim drops the file name after the last '/')."""
        query = "SELECT DISTINCT rtrim(path, replace(path, '/', '')) FROM products"
        return sorted(str(Path(folder)) for (folder,) in self._query(query))

    def column(self, name: str) -> list:
        """One field of every row, in id order."""
        if name not in ROW_FIELDS:
            raise ValueError(f"no catalog field {name!r}")
        return [value for (value,) in self._query(f"SELECT {name} FROM products ORDER BY id")]


@dataclass
class LoadedIndex:
    folder: Path
    manifest: IndexManifest
    rows: CatalogRows
    head: CategoryHead | MlpCategoryHead
    store: VectorStore

    def thumbnail(self, row: dict) -> str:
        """The item's thumbnail made at build time, or its photo for an index built without them."""
        path = thumbnail_path(self.folder, row["id"])
        return str(path) if path.is_file() else row["path"]

    def close(self) -> None:
        self.store.close()
        self.rows.close()


def thumbnail_path(folder: Path, item_id: int) -> Path:
    """Where the index in `folder` keeps item `item_id`'s thumbnail (a folder of them: `thumbnails_dir`)."""
    return thumbnails_dir(folder) / f"{item_id}.jpg"


def thumbnails_dir(folder: Path) -> Path:
    return Path(folder) / THUMBNAILS


def _part(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise IndexCorruptError(f"product index at {folder} is incomplete: {name} is missing; {rebuild_hint(folder)}")
    return path


def load_index(index_dir: Path) -> LoadedIndex:
    """Open the index at `index_dir` (or its parked backup, should a swap have died half-way); should a build
    swap in a new folder while it loads, it loads again, so its parts always come from one build.

    Raises:
        IndexMissingError: no index there.
        IndexCorruptError: a part is missing, damaged or inconsistent; the message names the file and the
            command that rebuilds the index.
    """
    index_dir = Path(index_dir)
    loaded, _ = index_folder.read_stable(index_dir, lambda: _load(index_dir), LoadedIndex.close)
    return loaded


def _read_part(folder: Path, name: str, read):
    """`read(path)` of the part `name`, its damage reported as IndexCorruptError naming it."""
    path = _part(folder, name)
    try:
        return read(path)
    except IndexCorruptError:
        raise
    except DAMAGED as exc:
        raise damaged(folder, name, exc) from None


def _load(index_dir: Path) -> LoadedIndex:
    folder = locate(index_dir)
    manifest = IndexManifest.read(folder)
    head = _read_part(folder, HEAD, load_head)
    rows = _read_part(folder, CATALOG, CatalogRows)
    try:
        store = open_store(folder, manifest.store)
    except DAMAGED as exc:
        rows.close()
        raise IndexCorruptError(f"product index at {folder}: its vectors cannot be read ({exc}); "
                                f"{rebuild_hint(folder)}") from None
    count = manifest.items
    held = store.count()
    if len(rows) != count or held != count:
        store.close()
        rows.close()
        raise IndexCorruptError(
            f"product index at {folder} is inconsistent: manifest says {count} items, the catalog has "
            f"{len(rows)} rows and the {store.kind} store {held} vectors; {rebuild_hint(folder)}"
        )
    return LoadedIndex(folder, manifest, rows, head, store)
