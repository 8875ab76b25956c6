"""The instance-retrieval protocol of the benchmarks: the GroceryStore photos carry their official split in
`products_manifest.csv` (`original_label` ends in "(official split: val)"); those val photos are the
queries, every other photo of the shared collection the catalog, so no query was taken in the catalog's
capture session."""

from __future__ import annotations

import csv
from pathlib import Path

from lookalike.paths import data_dir

VAL_SUFFIX = "(official split: val)"


def grocery_val_split(folder: Path) -> tuple[Path, Path, list[Path]]:
    """Writes `folder/catalog.csv` and `folder/queries.csv` (absolute paths); returns them and the query photos."""
    manifest = data_dir() / "products_manifest.csv"
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    column = "file" if "file" in rows[0] else "path"
    for row in rows:  # absolute, so the CSVs can live elsewhere
        beside = manifest.parent / row[column]
        row[column] = str((beside if beside.exists() else data_dir() / "products" / row[column]).resolve())
    is_query = [row.get("original_label", "").endswith(VAL_SUFFIX) for row in rows]
    paths = {}
    for name, wanted in (("catalog", False), ("queries", True)):
        paths[name] = folder / f"{name}.csv"
        with paths[name].open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(row for row, query in zip(rows, is_query, strict=True) if query == wanted)
    queries = [Path(row[column]) for row, query in zip(rows, is_query, strict=True) if query]
    return paths["catalog"], paths["queries"], queries
