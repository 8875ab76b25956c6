"""catalog.sqlite: one row per indexed photo, keyed by its stable item id (the index's metadata store), written
once at build time and read a few rows per query."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from lookalike.products.errors import IndexCorruptError, damaged

CATALOG = "catalog.sqlite"
ROW_FIELDS = ("id", "path", "category", "title", "price", "url", "product_id", "width", "height", "sha256")


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
