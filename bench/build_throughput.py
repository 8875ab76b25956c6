"""Index build throughput (photos/s, empty embedding cache) of the default product model, against the
previous path measured in the same run.

Rows:
- previous path: eager torch, batch 32, each photo decoded in the calling thread before the network
  runs (what `index_builder.py` did before onnxruntime and overlapped decoding);
- the current build (`build_index`, empty cache) with each backend and batch size;
- the current build with its cache warm;
- `index_builder.py` as a new user runs it: a fresh process, empty cache, imports and model load counted.
It also reports how far the onnxruntime embeddings stray from torch's on every photo (min cosine).

    python bench/build_throughput.py [--per-category 10] [--catalog DIR] [--synthetic N] [--device cuda]

`--synthetic N` draws N photos per category (640x480 JPEGs of random shapes) where no catalog is at
hand (a lent GPU machine); `--device cuda` adds the GPU build beside the CPU paths.

Not a test: absolute numbers depend on the machine (and on anything else running on it); compare
the ratios, which are measured side by side.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

from lookalike.images.loading import load_image  # noqa: E402
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


def synthetic(root: Path, per_category: int, categories: int = 6) -> list[Path]:
    """JPEG photos of random coloured shapes: what a GPU machine without the shared photos can embed."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    photos = []
    for category in range(categories):
        (root / f"c{category}").mkdir(parents=True)
        for i in range(per_category):
            image = Image.new("RGB", (640, 480), tuple(int(v) for v in rng.integers(0, 255, 3)))
            draw = ImageDraw.Draw(image)
            for _ in range(8):
                x, y = rng.integers(0, 560), rng.integers(0, 400)
                draw.ellipse((x, y, x + 80, y + 80), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
            image.save(root / f"c{category}" / f"{i}.jpg", quality=90)
            photos.append(root / f"c{category}" / f"{i}.jpg")
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
    parser.add_argument("--synthetic", type=int, help="draw this many photos per category instead")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        os.environ["LOOKALIKE_CACHE"] = str(work_dir / "models")  # where the ONNX export is kept
        if args.synthetic:
            photos = synthetic(work_dir / "catalog", args.synthetic)
        else:
            photos = subset(args.catalog, args.per_category, work_dir / "catalog")
        torch_embedder = create_embedder(DEFAULT_PRODUCT_MODEL, backend="torch", device="cpu")
        onnx_embedder = create_embedder(DEFAULT_PRODUCT_MODEL, backend="onnx", device="cpu")
        start = time.perf_counter()
        images = [load_image(photo, draft=torch_embedder.preprocess.draft) for photo in photos]
        reference = torch_embedder.embed(images, batch_size=32)
        previous = len(photos) / (time.perf_counter() - start)
        rows = [("previous path: torch, batch 32, decoded in the calling thread", previous)]
        runs = [("torch", torch_embedder, 16), ("onnxruntime", onnx_embedder, 8), ("onnxruntime", onnx_embedder, 32),
                ("onnxruntime (default)", onnx_embedder, None)]
        if args.device == "cuda":
            gpu_embedder = create_embedder(DEFAULT_PRODUCT_MODEL, device="cuda")
            runs.append((f"torch on {torch.cuda.get_device_name()}", gpu_embedder, None))
        for i, (label, embedder, batch) in enumerate(runs):
            cache = work_dir / f"cache-{i}"
            seconds = timed_build(work_dir / "catalog", work_dir / f"index-{i}", embedder, batch, cache)
            rows.append((f"build_index, {label}, batch {batch or embedder.batch_size}, overlapped decoding",
                         len(photos) / seconds))
        os.environ["LOOKALIKE_CACHE"] = str(work_dir / "cache-cli")  # empty; the ONNX export is made again
        export = work_dir / "cache-cli" / "onnx"
        export.mkdir(parents=True)
        for made in (work_dir / "models" / "onnx").glob("*.onnx"):  # ...unless copied: a user exports once
            (export / made.name).write_bytes(made.read_bytes())
        start = time.perf_counter()
        subprocess.run([sys.executable, str(REPO_ROOT / "index_builder.py"), str(work_dir / "catalog"), "--out",
                        str(work_dir / "index-cli"), "--json"], check=True, capture_output=True)
        rows.append(("index_builder.py in a fresh process (imports, model load), empty cache",
                     len(photos) / (time.perf_counter() - start)))
        warm = timed_build(work_dir / "catalog", work_dir / "index-warm", onnx_embedder, None, None)
        rows.append(("build_index, cache warm", len(photos) / warm))
        stray = min_cosine(reference, onnx_embedder.embed(images))
        if args.device == "cuda":
            print(f"GPU vs CPU torch embeddings, min cosine: {min_cosine(reference, gpu_embedder.embed(images)):.7f}")
    baseline = rows[0][1]
    print(f"{len(photos)} photos, {os.cpu_count()} CPUs, {DEFAULT_PRODUCT_MODEL} {onnx_embedder.config['size']} px, "
          f"flip={onnx_embedder.flip}")
    print(f"{'path':80s} {'photos/s':>9s} {'x previous':>10s}")
    for label, rate in rows:
        print(f"{label:80s} {rate:9.1f} {rate / baseline:10.2f}")
    print(f"onnxruntime vs torch embeddings, min cosine over {len(photos)} photos: {stray:.7f}")


if __name__ == "__main__":
    main()
