"""The on-disk product index: what a build writes and a searcher loads, and nothing else.

    INDEX_DIR/
      manifest.json   model config, dim, metric, trees, counts, head accuracy, versions, skipped files
      catalog.sqlite  one row per indexed photo (id = row of vectors.npy = Annoy item)
      vectors.npy     float32 [N, dim] unit vectors, for exact re-ranking
      head.npz        the category head
      annoy/all.ann, annoy/<category number>.ann   the whole catalog, and one index per category

Loading checks that every part is present and consistent, and fails with `IndexMissingError`
or `IndexCorruptError` (subclasses of FileNotFoundError / ValueError) saying which part is wrong.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from lookalike.products.heads import CategoryHead
from lookalike.products.mlp_head import MlpCategoryHead, load_head
from lookalike.products.neighbours import METRIC

FORMAT = "lookalike.product-index/1"
THUMBNAILS = "thumbs"  # folder of <id>.jpg
ROW_FIELDS = ("id", "path", "category", "title", "price", "url", "product_id", "width", "height", "sha256")


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


def annoy_file(folder: Path, category_number: int | None) -> Path:
    return folder / "annoy" / ("all.ann" if category_number is None else f"{category_number}.ann")


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


@dataclass
class LoadedIndex:
    folder: Path
    manifest: dict
    rows: list[dict]
    vectors: np.ndarray
    head: CategoryHead | MlpCategoryHead
    categories: list[str]  # category number -> name (the order of the per-category Annoy files)
    annoy: dict[int | None, AnnoyIndex]  # None: the whole catalog

    def thumbnail(self, item_id: int) -> str:
        """The item's thumbnail made at build time, or its photo for an index built without them."""
        path = self.folder / THUMBNAILS / f"{item_id}.jpg"
        return str(path) if path.is_file() else self.rows[item_id]["path"]


def _part(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise IndexCorruptError(f"product index at {folder} is incomplete: {name} is missing")
    return path


def load_index(index_dir: Path) -> LoadedIndex:
    folder = locate(Path(index_dir))
    try:
        manifest = json.loads(_part(folder, "manifest.json").read_text())
    except json.JSONDecodeError as exc:
        raise IndexCorruptError(f"product index at {folder}: manifest.json is not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexCorruptError(f"{folder} is not a product index of format {FORMAT}")
    try:
        vectors = np.load(_part(folder, "vectors.npy"), allow_pickle=False)
        head = load_head(_part(folder, "head.npz"))
        db = sqlite3.connect(f"file:{_part(folder, 'catalog.sqlite')}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        try:
            rows = [dict(row) for row in db.execute("SELECT * FROM products ORDER BY id")]
        finally:
            db.close()
    except IndexCorruptError:
        raise
    except (OSError, ValueError, KeyError, sqlite3.DatabaseError) as exc:
        raise IndexCorruptError(f"product index at {folder} is damaged: {exc}") from None
    dim, count = manifest.get("dim"), manifest.get("items")
    if vectors.ndim != 2 or vectors.shape != (count, dim) or len(rows) != count:
        raise IndexCorruptError(
            f"product index at {folder} is inconsistent: manifest says {count} x {dim}, "
            f"vectors are {vectors.shape}, catalog has {len(rows)} rows"
        )
    categories = list(manifest["category_order"])
    annoy: dict[int | None, AnnoyIndex] = {}
    for number in [None, *range(len(categories))]:
        index = AnnoyIndex(dim, METRIC)
        path = annoy_file(folder, number)
        try:
            index.load(str(_part(folder, str(path.relative_to(folder)))), prefault=False)
        except OSError as exc:
            raise IndexCorruptError(f"product index at {folder}: cannot load {path.name} ({exc})") from None
        annoy[number] = index
    if annoy[None].get_n_items() != count:
        held = annoy[None].get_n_items()
        raise IndexCorruptError(f"product index at {folder}: Annoy holds {held} of {count} items")
    return LoadedIndex(folder, manifest, rows, vectors.astype(np.float32), head, categories, annoy)
