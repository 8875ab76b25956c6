"""The on-disk product index: what a build writes and a searcher loads, and nothing else.

    INDEX_DIR/
      manifest.json   model config, dim, counts, head accuracy, versions, skipped files, and `store`:
                      which vector store holds the vectors (`lookalike.vectors.stores`)
      catalog.sqlite  one row per indexed photo, keyed by its stable item id (the metadata store)
      head.npz        the category head
      head_views.npz  item ids and their vectors from the head's second backbone, if it has one: what an
                      update refits the head on without embedding the kept photos again (search needs none)
      thumbs/<id>.jpg gallery thumbnails
      annoy/ or milvus/   the vectors, when the store lives in the folder (a Milvus server holds its own)

Rows are read from SQLite when a query needs them, and the vectors stay in the store (memory-mapped
or on a Milvus server), so a large catalog costs the app little memory. Loading checks that every part
is present and consistent, and fails with `IndexMissingError` or `IndexCorruptError` (subclasses of
FileNotFoundError / ValueError) saying which part is wrong.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.products.heads import CategoryHead
from lookalike.products.mlp_head import MlpCategoryHead, load_head
from lookalike.vectors.stores import VectorStore, open_store

FORMAT = "lookalike.product-index/2"  # 2: item ids and a pluggable vector store
THUMBNAILS = "thumbs"  # folder of <id>.jpg
HEAD_VIEWS = "head_views.npz"
ROW_FIELDS = ("id", "path", "category", "title", "price", "url", "product_id", "width", "height", "sha256")


def write_head_views(folder: Path, ids: Sequence[int], vectors: np.ndarray) -> None:
    """Each item id's vector from the head's second backbone, as `read_head_views` reads it (`HEAD_VIEWS`)."""
    np.savez(Path(folder) / HEAD_VIEWS, ids=np.asarray(ids, np.int64), vectors=vectors)


def read_head_views(folder: Path) -> dict[int, np.ndarray]:
    """Item id -> its vector from the head's second backbone (`HEAD_VIEWS`). Raises OSError, ValueError or
    KeyError when the file is missing or damaged."""
    with np.load(Path(folder) / HEAD_VIEWS, allow_pickle=False) as stored:
        return dict(zip(stored["ids"].tolist(), stored["vectors"], strict=True))


class IndexMissingError(FileNotFoundError):
    """No index at the given folder."""


class IndexCorruptError(ValueError):
    """An index folder that exists but cannot be used (a part missing, unreadable or inconsistent)."""


def backup_dir(index_dir: Path) -> Path:
    """Where a build parks the previous index while swapping in the new one."""
    return index_dir.with_name(f".{index_dir.name}.previous")


def locate(index_dir: Path) -> Path:
    """The folder to load: the index itself, or the parked previous one if a swap was interrupted."""
    if (index_dir / "manifest.json").is_file() or index_dir.is_dir():
        return index_dir
    if (backup_dir(index_dir) / "manifest.json").is_file():
        return backup_dir(index_dir)
    raise IndexMissingError(f"no product index at {index_dir} (build one with index_builder.py)")


def index_exists(index_dir: Path) -> bool:
    try:
        return (locate(Path(index_dir)) / "manifest.json").is_file()
    except IndexMissingError:
        return False


def write_rows(path: Path, rows: list[dict]) -> None:
    db = sqlite3.connect(path)
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
    """catalog.sqlite, read on demand (one read-only connection per thread): a query needs 30 rows,
    not the whole catalog in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self.count = self._db().execute("SELECT COUNT(*) FROM products").fetchone()[0]

    def _db(self) -> sqlite3.Connection:
        if getattr(self._local, "db", None) is None:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            db.row_factory = sqlite3.Row
            self._local.db = db
        return self._local.db

    def __len__(self) -> int:
        return self.count

    def get(self, ids: Sequence[int]) -> list[dict]:
        """The rows of `ids`, in that order."""
        wanted = [int(i) for i in ids]
        found = {
            row["id"]: dict(row)
            for row in self._db().execute(f"SELECT * FROM products WHERE id IN ({','.join('?' * len(wanted))})", wanted)
        }
        if missing := [i for i in wanted if i not in found]:
            raise IndexCorruptError(f"the catalog at {self.path} lacks item {missing[0]}, which the vector store holds")
        return [found[i] for i in wanted]

    def __iter__(self) -> Iterator[dict]:
        """Every row in id order, streamed."""
        return (dict(row) for row in self._db().execute("SELECT * FROM products ORDER BY id"))

    def first_per_category(self, count: int) -> list[str]:
        """The photo of the lowest id in each of the first `count` categories (by name)."""
        query = ("SELECT path FROM products WHERE id IN (SELECT MIN(id) FROM products GROUP BY category) "
                 "ORDER BY category LIMIT ?")
        return [path for (path,) in self._db().execute(query, (count,))]

    def folders(self) -> list[str]:
        """The folders holding the catalog's photos (rtrim drops the file name after the last '/')."""
        query = "SELECT DISTINCT rtrim(path, replace(path, '/', '')) FROM products"
        return sorted(str(Path(folder)) for (folder,) in self._db().execute(query))

    def column(self, name: str) -> list:
        """One field of every row, in id order."""
        if name not in ROW_FIELDS:
            raise ValueError(f"no catalog field {name!r}")
        return [value for (value,) in self._db().execute(f"SELECT {name} FROM products ORDER BY id")]


@dataclass
class LoadedIndex:
    folder: Path
    manifest: dict
    rows: CatalogRows
    head: CategoryHead | MlpCategoryHead
    store: VectorStore

    def thumbnail(self, row: dict) -> str:
        """The item's thumbnail made at build time, or its photo for an index built without them."""
        path = self.folder / THUMBNAILS / f"{row['id']}.jpg"
        return str(path) if path.is_file() else row["path"]

    def close(self) -> None:
        self.store.close()


def _part(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise IndexCorruptError(f"product index at {folder} is incomplete: {name} is missing")
    return path


def read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads(_part(folder, "manifest.json").read_text())
    except json.JSONDecodeError as exc:
        raise IndexCorruptError(f"product index at {folder}: manifest.json is not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise IndexCorruptError(
            f"{folder} is not a product index of format {FORMAT} (found {found!r}): rebuild it with index_builder.py"
        )
    return manifest


def load_index(index_dir: Path) -> LoadedIndex:
    folder = locate(Path(index_dir))
    manifest = read_manifest(folder)
    try:
        head = load_head(_part(folder, "head.npz"))
        rows = CatalogRows(_part(folder, "catalog.sqlite"))
        store = open_store(folder, manifest["store"])
    except IndexCorruptError:
        raise
    except (OSError, ValueError, KeyError, sqlite3.DatabaseError) as exc:
        raise IndexCorruptError(f"product index at {folder} is damaged: {exc}") from None
    count = manifest.get("items")
    held = store.count()
    if len(rows) != count or held != count:
        store.close()
        raise IndexCorruptError(
            f"product index at {folder} is inconsistent: manifest says {count} items, the catalog has "
            f"{len(rows)} rows and the {store.kind} store {held} vectors"
        )
    return LoadedIndex(folder, manifest, rows, head, store)
