"""Index build throughput (photos/s, empty embedding cache) of the default product model, against the
previous path measured in the same run.

Rows:
- previous path: eager torch, batch 32, each photo decoded in the calling thread before the network
  runs (what `index_builder.py` did before onnxruntime and overlapped decoding);
- the current build (`build_index`, empty cache) with each backend and batch size;
- the current build with its cache warm.
It also reports how far the onnxruntime embeddings stray from torch's on every photo (min cosine).

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
from model_zoo.onnx_runtime import min_cosine  # noqa: E402
from model_zoo.product_embedders import DEFAULT_PRODUCT_MODEL, ProductEmbedder, create_embedder  # noqa: E402


def subset(catalog: Path, per_category: int, root: Path) -> list[Path]:
    """Symlink the first photos of each category under `root`; returns them."""
    photos = []
    for folder in sorted(p for p in catalog.iterdir() if p.is_dir()):
        (root / folder.name).mkdir(parents=True)
        for photo in sorted(folder.glob("*.jpg"))[:per_category]:
            (root / folder.name / photo.name).symlink_to(photo.resolve())
            photos.append(root / folder.name / photo.name)
    return photos


def timed_build(catalog: Path, out: Path, embedder: ProductEmbedder, batch: int | None, cache: Path | None) -> float:
    if cache is not None:
        os.environ["LOOKALIKE_CACHE"] = str(cache)  # a fresh, empty embedding cache
    start = time.perf_counter()
    build_index(catalog, out, embedder=embedder, batch_size=batch, show_bar=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=data_dir() / "products")
    parser.add_argument("--per-category", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        os.environ["LOOKALIKE_CACHE"] = str(work_dir / "models")  # where the ONNX export is kept
        photos = subset(args.catalog, args.per_category, work_dir / "catalog")
        torch_embedder = create_embedder(DEFAULT_PRODUCT_MODEL, backend="torch")
        onnx_embedder = create_embedder(DEFAULT_PRODUCT_MODEL, backend="onnx")
        start = time.perf_counter()
        reference = torch_embedder.embed(photos, batch_size=32)
        previous = len(photos) / (time.perf_counter() - start)
        rows = [("previous path: torch, batch 32, decoded in the calling thread", previous)]
        runs = [("torch", torch_embedder, 16), ("onnxruntime", onnx_embedder, 8), ("onnxruntime", onnx_embedder, 32),
                ("onnxruntime (default)", onnx_embedder, None)]
        for i, (label, embedder, batch) in enumerate(runs):
            cache = work_dir / f"cache-{i}"
            seconds = timed_build(work_dir / "catalog", work_dir / f"index-{i}", embedder, batch, cache)
            rows.append((f"build_index, {label}, batch {batch or embedder.batch_size}, overlapped decoding",
                         len(photos) / seconds))
        warm = timed_build(work_dir / "catalog", work_dir / "index-warm", onnx_embedder, None, None)
        rows.append(("build_index, cache warm", len(photos) / warm))
        stray = min_cosine(reference, onnx_embedder.embed(photos))
    baseline = rows[0][1]
    print(f"{len(photos)} photos, {os.cpu_count()} CPUs, {DEFAULT_PRODUCT_MODEL} {onnx_embedder.config['size']} px, "
          f"flip={onnx_embedder.flip}")
    print(f"{'path':80s} {'photos/s':>9s} {'x previous':>10s}")
    for label, rate in rows:
        print(f"{label:80s} {rate:9.1f} {rate / baseline:10.2f}")
    print(f"onnxruntime vs torch embeddings, min cosine over {len(photos)} photos: {stray:.7f}")


if __name__ == "__main__":
    main()
