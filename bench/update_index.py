"""Updating an index with local features after a few new photos: copying the unchanged photos' keypoints
from the index in use (today) against extracting every photo's again (the previous behaviour, measured in
the same run by turning the copy off).

Both updates start from the same index (a catalog without the last `--new` photos of each category) and add
those photos; the embeddings of unchanged photos are kept either way, so the difference is the keypoints.
The table also says whether the two updated indexes hold the same keypoints (they must).

    python bench/update_index.py [--per-category 40] [--new 2] [--catalog DIR]

Not a test: absolute numbers depend on the machine (and on anything else running on it); compare the
ratio, which is measured side by side.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

from bench.build_throughput import subset  # noqa: E402
from lookalike.evaluation.report import markdown_table  # noqa: E402
from lookalike.paths import data_dir  # noqa: E402
from lookalike.products.build import build_index  # noqa: E402
from lookalike.products.local_features import FILES  # noqa: E402
from lookalike.products.local_features import FOLDER as LOCAL_FEATURES  # noqa: E402


def timed_update(catalog: Path, start: Path, out: Path, copy_features: bool) -> tuple[float, dict]:
    shutil.copytree(start, out)
    switch = nullcontext() if copy_features else mock.patch("lookalike.products.build.reusable", return_value=None)
    began = time.perf_counter()
    with switch:
        report = build_index(catalog, out, update=True, show_bar=False)
    return time.perf_counter() - began, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-category", type=int, default=40, help="photos of each category in the catalog")
    parser.add_argument("--new", type=int, default=2, help="photos of each category the update adds")
    parser.add_argument("--catalog", type=Path, default=data_dir() / "products")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        photos = subset(args.catalog, args.per_category, work / "catalog")
        by_category: dict[str, list[Path]] = {}
        for photo in photos:
            by_category.setdefault(photo.parent.name, []).append(photo)
        held = [photo for group in by_category.values() for photo in group[-args.new :]]
        aside = work / "aside"
        aside.mkdir()
        for number, photo in enumerate(held):  # the first index lacks them ...
            photo.rename(aside / str(number))
        build_index(work / "catalog", work / "start", local_features=True, show_bar=False)
        for number, photo in enumerate(held):  # ... the update adds them
            (aside / str(number)).rename(photo)
        previous, _ = timed_update(work / "catalog", work / "start", work / "extract_all", copy_features=False)
        today, report = timed_update(work / "catalog", work / "start", work / "copy", copy_features=True)
        same = all(
            np.array_equal(np.load(work / "extract_all" / LOCAL_FEATURES / f"{name}.npy"),
                           np.load(work / "copy" / LOCAL_FEATURES / f"{name}.npy"))
            for name in FILES
        )
    rows = [
        {"update": "extract every photo's keypoints (previous)", "seconds": round(previous, 1), "x previous": 1.0},
        {"update": "copy the unchanged photos' keypoints (today)", "seconds": round(today, 1),
         "x previous": round(previous / today, 2)},
    ]
    print(f"{report['items']} photos, {report['update']['added']} added, "
          f"{report['local_features']['reused']} keypoint sets copied; same keypoints in both indexes: {same}")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
