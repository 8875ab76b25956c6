"""Thumbnails: a 256 px copy of every catalog photo, made while the photo was decoded for its embedding
(`images.thumbnails`), so the app's gallery shows small files. Entry: how many were written."""

from __future__ import annotations

from pathlib import Path

from lookalike.images.thumbnails import write_thumbnails
from lookalike.products.index import LoadedIndex
from lookalike.products.parts.base import BuildContext, Part, Query
from lookalike.products.results import Hit

FOLDER = "thumbs"  # of <id>.jpg


def thumbnail_path(folder: Path, item_id: int) -> Path:
    """Where the index in `folder` keeps item `item_id`'s thumbnail."""
    return Path(folder) / FOLDER / f"{item_id}.jpg"


class Thumbnails(Part):
    name = "thumbnails"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def write(cls, build: BuildContext, folder: Path) -> int:
        earlier = build.previous.folder / FOLDER if build.previous else None
        return write_thumbnails(build.paths, build.embedded.digests, folder / FOLDER, build.ids, earlier)

    @classmethod
    def open(cls, index: LoadedIndex, entry: int, current: Part | None = None) -> Thumbnails:
        return cls(index.folder)

    def path(self, row: dict) -> str:
        """The item's thumbnail, or its photo when none could be made."""
        path = thumbnail_path(self.folder, row["id"])
        return str(path) if path.is_file() else row["path"]

    def annotate(self, hits: list[Hit], rows: list[dict], query: Query) -> None:
        for hit, row in zip(hits, rows, strict=True):
            hit.thumbnail = self.path(row)
