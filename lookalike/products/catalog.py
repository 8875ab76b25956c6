"""Read a product catalog, a folder of category sub-folders or a manifest CSV, into a list of items.

A manifest has columns `path,category[,title,price,url,product_id]` (`file` is accepted for `path`, as
in the shared products_manifest.csv). Relative paths are looked up next to the CSV first, then under
the catalog root, so a manifest can sit beside its photos or describe a folder elsewhere.
Nothing is opened here: unreadable files are found (and reported) when the builder decodes them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

OPTIONAL_FIELDS = ("title", "price", "url", "product_id")


@dataclass(frozen=True)
class CatalogItem:
    path: Path
    category: str
    title: str = ""
    price: str = ""
    url: str = ""
    product_id: str = ""


def from_folders(root: Path) -> list[CatalogItem]:
    """Every non-hidden file in `root/<category>/`, sorted, so stray non-images get reported too."""
    if not root.is_dir():
        raise FileNotFoundError(f"catalog folder not found: {root}")
    items = [
        CatalogItem(path.resolve(), folder.name)
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for path in sorted(folder.iterdir())
        if path.is_file() and not path.name.startswith(".")
    ]
    if not items:
        raise ValueError(f"no category sub-folders with files in {root}")
    return items


def from_manifest(csv_path: Path, root: Path | None = None) -> list[CatalogItem]:
    """The items listed in a manifest CSV; a row without path or category is an error, not a skip."""
    if not csv_path.is_file():
        raise FileNotFoundError(f"manifest not found: {csv_path}")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    items = []
    for line, row in enumerate(rows, start=2):
        relative, category = row.get("path") or row.get("file"), row.get("category")
        if not relative or not category:
            raise ValueError(f"{csv_path}:{line}: every row needs a path (or file) and a category")
        fields = {name: (row.get(name) or "").strip() for name in OPTIONAL_FIELDS}
        items.append(CatalogItem(_resolve(Path(relative), csv_path.parent, root), category.strip(), **fields))
    if not items:
        raise ValueError(f"manifest {csv_path} lists no images")
    return items


def _resolve(path: Path, beside: Path, root: Path | None) -> Path:
    if path.is_absolute():
        return path
    if root is not None and not (beside / path).exists():
        return (root / path).resolve()
    return (beside / path).resolve()


def attach_metadata(items: list[CatalogItem], metadata: list[CatalogItem]) -> list[CatalogItem]:
    """`items` with title, price, url and product_id taken from the manifest row of the same file."""
    rows = {row.path: row for row in metadata}
    return [
        replace(item, **{name: getattr(rows[item.path], name) for name in OPTIONAL_FIELDS})
        if item.path in rows
        else item
        for item in items
    ]


def read_catalog(catalog: Path, manifest: Path | None = None) -> list[CatalogItem]:
    """Items of a catalog given as a folder, a manifest CSV, or a folder plus a manifest."""
    if manifest is not None:
        return from_manifest(manifest, catalog if catalog.is_dir() else None)
    if catalog.suffix.lower() == ".csv":
        return from_manifest(catalog)
    return from_folders(catalog)
