"""Verification pairs: LFW's `pairs.txt`, a `fold,same,image1,image2` CSV, or pairs drawn from folders.

Paths in a `Pair` are relative to the faces folder, so one pairs file serves any copy of the data.
"""

from __future__ import annotations

import csv
import itertools
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class PairsFormatError(ValueError):
    """A pairs file that cannot be read; the message gives the file and line."""


@dataclass(frozen=True)
class Pair:
    fold: int
    same: bool
    image1: str
    image2: str


def lfw_image(name: str, number: str) -> str:
    return f"{name}/{name}_{int(number):04d}.jpg"


def read_lfw_pairs(path: Path) -> list[Pair]:
    """LFW format: header `folds pairs_per_class` (or just `pairs`), then per fold the matched lines
    `name i j` followed by the mismatched lines `name1 i name2 j`."""
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    if not lines or not all(field.isdigit() for field in lines[0]) or len(lines[0]) > 2:
        raise PairsFormatError(f"{path}: first line must be 'folds pairs_per_class', got {lines[:1]}")
    folds, per_class = (int(lines[0][0]), int(lines[0][1])) if len(lines[0]) == 2 else (1, int(lines[0][0]))
    body = lines[1:]
    if len(body) != folds * 2 * per_class:
        raise PairsFormatError(
            f"{path}: header promises {folds}x2x{per_class} pairs, found {len(body)} lines"
        )
    pairs = []
    for number, fields in enumerate(body, start=2):
        fold = (number - 2) // (2 * per_class) + 1
        if len(fields) == 3:
            pairs.append(Pair(fold, True, lfw_image(fields[0], fields[1]), lfw_image(fields[0], fields[2])))
        elif len(fields) == 4:
            pairs.append(Pair(fold, False, lfw_image(fields[0], fields[1]), lfw_image(fields[2], fields[3])))
        else:
            raise PairsFormatError(f"{path}:{number}: expected 3 or 4 fields, got {len(fields)}")
    return pairs


def read_csv_pairs(path: Path) -> list[Pair]:
    """CSV with header `fold,same,image1,image2`; `same` is 1/0 or true/false."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"fold", "same", "image1", "image2"} - set(reader.fieldnames or [])
        if missing:
            raise PairsFormatError(f"{path}: missing column(s) {sorted(missing)}")
        pairs = []
        for number, row in enumerate(reader, start=2):
            same = row["same"].strip().lower()
            if same not in {"1", "0", "true", "false"} or not row["fold"].strip().isdigit():
                raise PairsFormatError(
                    f"{path}:{number}: bad fold/same value ({row['fold']!r}, {row['same']!r})"
                )
            pairs.append(Pair(int(row["fold"]), same in {"1", "true"}, row["image1"], row["image2"]))
    return pairs


def generate_pairs(faces_dir: Path, count: int = 600, folds: int = 10, seed: int = 0) -> list[Pair]:
    """Half matched, half mismatched pairs drawn from `<identity>/<image>` folders, the same on every run."""
    people: dict[str, list[str]] = defaultdict(list)
    for image in sorted(Path(faces_dir).glob("*/*")):
        if image.suffix.lower() in IMAGE_SUFFIXES:
            people[image.parent.name].append(f"{image.parent.name}/{image.name}")
    names = sorted(people)
    matched_pool = [pair for name in names for pair in itertools.combinations(people[name], 2)]
    if not matched_pool or len(names) < 2:
        raise ValueError(f"{faces_dir}: need identity folders with at least two images and two identities")
    rng = random.Random(seed)
    matched = rng.sample(matched_pool, min(count // 2, len(matched_pool)))
    mismatched = []
    for _ in matched:
        first, second = rng.sample(names, 2)
        mismatched.append((rng.choice(people[first]), rng.choice(people[second])))
    pairs = [p for m, d in zip(matched, mismatched, strict=True) for p in ((True, *m), (False, *d))]
    return [Pair(i // 2 % folds + 1, same, a, b) for i, (same, a, b) in enumerate(pairs)]


def load_pairs(faces_dir: Path, pairs_file: Path | None = None) -> list[Pair]:
    """`pairs_file` (.csv or LFW .txt), else `faces_dir/pairs.txt`, else generated pairs."""
    if pairs_file is None and (Path(faces_dir) / "pairs.txt").is_file():
        pairs_file = Path(faces_dir) / "pairs.txt"
    if pairs_file is None:
        return generate_pairs(faces_dir)
    if not Path(pairs_file).is_file():
        raise FileNotFoundError(f"pairs file not found: {pairs_file}")
    return (
        read_csv_pairs(pairs_file)
        if Path(pairs_file).suffix.lower() == ".csv"
        else read_lfw_pairs(pairs_file)
    )


def limit_pairs(pairs: list[Pair], limit: int) -> list[Pair]:
    """The first `limit` pairs taken in turn from each (fold, matched) group, so a small subset keeps
    both classes and every fold."""
    groups: dict[tuple[int, bool], list[Pair]] = defaultdict(list)
    for pair in pairs:
        groups[(pair.fold, pair.same)].append(pair)
    interleaved = [p for row in itertools.zip_longest(*groups.values()) for p in row if p is not None]
    return interleaved[:limit]
