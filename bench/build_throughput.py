"""Index build throughput (photos/s) of the default product model against a baseline, same run.

Baseline: EfficientNet-Lite0 at 224 px, one pass per photo (no flip). Each config builds the same
catalog subset with an empty embedding cache; the default is also rebuilt with its cache warm.

    python bench/build_throughput.py [--per-category 10] [--catalog DIR]

Not a test: absolute numbers depend on the machine (and on anything else running on it); compare
the ratios, which are measured side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

from lookalike.paths import data_dir  # noqa: E402
from lookalike.products.build import build_index  # noqa: E402
from model_zoo.product_embedders import DEFAULT_PRODUCT_MODEL, ProductEmbedder, create_embedder  # noqa: E402

CONFIGS = {
    "baseline": {"name": "efficientnet_lite0", "size": 224, "flip": False},
    "default": {"name": DEFAULT_PRODUCT_MODEL},
}


def subset(catalog: Path, per_category: int, root: Path) -> int:
    """Symlink the first photos of each category under `root`; returns how many."""
    count = 0
    for folder in sorted(p for p in catalog.iterdir() if p.is_dir()):
        (root / folder.name).mkdir(parents=True)
        for photo in sorted(folder.glob("*.jpg"))[:per_category]:
            (root / folder.name / photo.name).symlink_to(photo.resolve())
            count += 1
    return count


def timed_build(catalog: Path, out: Path, embedder: ProductEmbedder) -> float:
    start = time.perf_counter()
    build_index(catalog, out, embedder=embedder, show_bar=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=data_dir() / "products")
    parser.add_argument("--per-category", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        photos = subset(args.catalog, args.per_category, work_dir / "catalog")
        rows = []
        for label, config in CONFIGS.items():
            os.environ["LOOKALIKE_CACHE"] = str(work_dir / f"cache-{len(rows)}")  # cold cache per config
            embedder = create_embedder(**config)
            seconds = timed_build(work_dir / "catalog", work_dir / f"index-{len(rows)}", embedder)
            setting = f"{label}: {embedder.name} {embedder.config['size']} px, flip={embedder.flip}"
            rows.append((setting, photos / seconds))
        warm = timed_build(work_dir / "catalog", work_dir / "index-warm", embedder)
        rows.append((f"{rows[-1][0]}, cache warm", photos / warm))
    baseline = rows[0][1]
    print(f"{photos} photos, {os.cpu_count()} CPUs, torch threads from LOOKALIKE_THREADS or all cores")
    print(f"{'config':70s} {'photos/s':>9s} {'x baseline':>10s}")
    for label, rate in rows:
        print(f"{label:70s} {rate:9.1f} {rate / baseline:10.2f}")


if __name__ == "__main__":
    main()
