"""Photos named after people, and which face of a photo carries its name: what a face gallery is built from
(`gallery_build`) and an identification is scored on (`lookalike.evaluation.identification`).

A photo is named by its folder (`<person>/<photo>`) or by a CSV manifest row (`path,person[,x1,y1,x2,y2]`).
Which face of a photo is the person's: the one nearest its centre, as photos named after someone are framed
on them (LFW's crops often hold a larger bystander), or, when a manifest row gives a box, the face that box
overlaps most. A manifest may list one photo several times with different people and boxes.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from lookalike.faces.photo_faces import Box, PhotoFaces

__all__ = ["NO_FACE", "LabelledPhoto", "labelled_face", "read_labelled"]

BOX_COLUMNS = ("x1", "y1", "x2", "y2")
NO_FACE = "no face found"


@dataclass(frozen=True)
class LabelledPhoto:
    """One photo named after a person: the gallery's unit (a photo named twice is two of these)."""

    path: Path
    person: str
    box: Box | None = None  # the labelled face's box, from a manifest; None: the face nearest the centre


def read_labelled(source: str | Path) -> list[LabelledPhoto]:
    """Photos named after people: a folder of `<person>/<photo>` files (every non-hidden file, so stray
    non-images get reported) or a CSV manifest `path,person[,x1,y1,x2,y2]` (relative paths beside the CSV).

    Raises:
        FileNotFoundError: `source` does not exist.
        ValueError: no photo in it, or a malformed manifest row.
    """
    source = Path(source)
    if source.is_dir():
        photos = [
            LabelledPhoto(path.resolve(), folder.name)
            for folder in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
            for path in sorted(folder.iterdir())
            if path.is_file() and not path.name.startswith(".")
        ]
    elif source.is_file():
        photos = _from_manifest(source)
    else:
        raise FileNotFoundError(f"gallery not found: {source} (a folder of <person>/<photo> or a CSV manifest)")
    if not photos:
        raise ValueError(f"no photos in {source}: expected <person>/<photo> sub-folders or path,person rows")
    return photos


def _from_manifest(csv_path: Path) -> list[LabelledPhoto]:
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not {"path", "person"} <= set(reader.fieldnames or []):
            raise ValueError(f"{csv_path}: a manifest needs the columns path,person (found {reader.fieldnames})")
        rows = list(reader)
    photos = []
    for line, row in enumerate(rows, start=2):
        path, person = (row.get("path") or "").strip(), (row.get("person") or "").strip()
        if not path or not person:
            raise ValueError(f"{csv_path}:{line}: every row needs a path and a person")
        box = None
        if any((row.get(c) or "").strip() for c in BOX_COLUMNS):
            try:
                x1, y1, x2, y2 = (float(row[c]) for c in BOX_COLUMNS)
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{csv_path}:{line}: a box needs four numbers x1,y1,x2,y2") from None
            if x2 <= x1 or y2 <= y1:
                raise ValueError(f"{csv_path}:{line}: the box must have x2 > x1 and y2 > y1")
            box = (x1, y1, x2, y2)
        full = Path(path) if Path(path).is_absolute() else csv_path.parent / path
        photos.append(LabelledPhoto(full.resolve(), person, box))
    return photos


def labelled_face(photo: PhotoFaces, box: Box | None) -> tuple[int | None, str]:
    """The face that carries a photo's label (see the module's docstring), or None and why there is none."""
    if not photo.faces:
        return None, NO_FACE
    if box is None:
        return photo.centre, ""
    index = photo.face_at(box)
    return index, "" if index is not None else f"no face at the given box ({len(photo.faces)} found elsewhere)"
