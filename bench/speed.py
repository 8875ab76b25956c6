"""Stage times of the default pipelines against the machine's compute ceiling, in one run (issue 37).

The ceiling is measured here, not assumed: EfficientNet-Lite1 at 240 px (~0.6 GFLOP a pass) as one batched
onnxruntime forward pass over random pixels (batch 32, the process's threads), in passes a second. Each stage is
then timed on this machine in the same run and set against it: a stage that runs the network reports the share
of the ceiling it reaches (the ceiling's time for its passes over its own time); any other stage reports what it
costs in ceiling passes (its time over the ceiling's time a pass), i.e. how many network passes it is worth.

Rows: the build's stages per photo on `--photos` catalog photos spread over the index (decode, the network with
its mirror image, SIFT keypoints, the category head's fit, the Annoy write) and, from the index's manifest, its
tuning and whole build; a warm query's stages (decode + embed, keypoints, ANN, verification and re-ranking) for
today's settings and the defaults before issue 37 (`bench/query_levers.py`'s variants, interleaved query by
query); the index's searcher and the face detector loaded after imports in fresh processes, and the app's start
until the page answers (with `--baseline DIR`, a copy of the code before the change, run alternately with this
one); a warm face verify of two LFW photos (its detection and embedding split).

    python bench/speed.py --index IDX --queries QUERIES.csv [--baseline DIR] [--skip build query load start face]
        [--out bench/out/speed.md]

Not a test. On a loaded machine only the ratios measured side by side mean anything.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.cold_start import launched_app  # noqa: E402
from bench.query_levers import run as query_variants  # noqa: E402
from lookalike.evaluation.products import spread  # noqa: E402
from lookalike.evaluation.report import markdown_table, show  # noqa: E402
from lookalike.images.loading import load_image  # noqa: E402
from lookalike.products import spatial  # noqa: E402
from lookalike.products.heads import CategoryHead  # noqa: E402
from lookalike.products.search import ProductSearcher  # noqa: E402
from lookalike.vectors.neighbours import build_annoy  # noqa: E402

GFLOP_PER_PASS = 0.6  # EfficientNet-Lite1 at 240 px
CEILING_BATCH = 32


def ceiling(seconds: float = 8.0) -> float:
    """Passes a second of one batched forward pass of the frozen Lite1 (no mirror image, no decoding)."""
    from model_zoo.product_embedders import create_embedder

    embedder = create_embedder("efficientnet_lite1", flip=False)
    pixels = np.random.default_rng(0).uniform(-1, 1, (CEILING_BATCH, 3, 240, 240)).astype(np.float32)
    embedder.embed_prepared(pixels)
    passes, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        embedder.embed_prepared(pixels)
        passes += CEILING_BATCH
    return passes / (time.perf_counter() - start)


def _per_photo(call, items) -> float:
    start = time.perf_counter()
    out = [call(item) for item in items]
    return 1000.0 * (time.perf_counter() - start) / len(items), out


def build_stages(searcher: ProductSearcher, count: int, pass_ms: float) -> list[dict]:
    embedder = searcher.embedder
    paths = spread([row["path"] for row in searcher.index.rows], count)
    decode_ms, pixels = _per_photo(lambda p: embedder.prepare(load_image(p, draft=embedder.preprocess.draft)), paths)
    batch = np.stack(pixels)
    embedder.embed_prepared(batch[:2])
    start = time.perf_counter()
    for first in range(0, len(batch), CEILING_BATCH):
        embedder.embed_prepared(batch[first:first + CEILING_BATCH])
    embed_ms = 1000.0 * (time.perf_counter() - start) / len(batch)
    passes = 2 if embedder.flip else 1
    keypoints_ms, _ = _per_photo(lambda p: spatial.extract(load_image(p)), paths)
    ids, vectors = searcher.index.store.vectors()
    labels = list(searcher.index.rows.column("category"))
    start = time.perf_counter()
    CategoryHead.fit(vectors, labels)
    head_ms = 1000.0 * (time.perf_counter() - start) / len(ids)
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"speed-{os.getpid()}.ann"
    start = time.perf_counter()
    build_annoy(vectors, ids, 32, folder)
    write_ms = 1000.0 * (time.perf_counter() - start) / len(ids)
    folder.unlink(missing_ok=True)
    rows = [
        {"stage": "build: decode + resize (one thread)", "ms a photo": decode_ms, "passes": 0},
        {"stage": f"build: embedding ({passes} passes: photo{' + mirror' if passes == 2 else ''})",
         "ms a photo": embed_ms, "passes": passes},
        {"stage": f"build: SIFT keypoints at {spatial.MAX_SIDE} px (one thread)", "ms a photo": keypoints_ms,
         "passes": 0},
        {"stage": f"build: category head fit ({len(ids)} vectors)", "ms a photo": head_ms, "passes": 0},
        {"stage": "build: Annoy write (32 trees)", "ms a photo": write_ms, "passes": 0},
    ]
    tuning = searcher.index.manifest.tuning
    items = searcher.index.manifest.items
    if tuning:
        rows.append({"stage": f"build: tuning, {len(tuning.get('epochs', []))} epochs, frozen pass "
                     f"{tuning.get('frozen_pass_seconds')} s of {tuning['seconds']} s (the index's manifest: "
                     "its build's own load)", "ms a photo": 1000.0 * tuning["seconds"] / items, "passes": 0})
    seconds = searcher.index.manifest.build_seconds
    if seconds:
        rows.append({"stage": "build: whole (the index's manifest: its build's own load)",
                     "ms a photo": 1000.0 * seconds / items, "passes": None})
    return [_against(row, pass_ms) for row in rows]


def _against(row: dict, pass_ms: float) -> dict:
    ms, passes = row["ms a photo"], row.pop("passes")
    row["ms a photo"] = round(ms, 2)
    row["in ceiling passes"] = round(ms / pass_ms, 2)
    row["share of ceiling"] = f"{passes * pass_ms / ms:.0%}" if passes else ""
    return row


def query_stages(index: Path, queries: Path, every: int, pass_ms: float) -> list[dict]:
    found, count = query_variants(index, queries, every, ["before", "today"])
    rows = []
    for row in found:
        for stage in ("embed", "keypoints", "search", "total"):
            ms = row[f"{stage} ms"]
            passes = (2 if row["variant"] == "before" else 1) if stage == "embed" else 0
            label = {"embed": "decode + embed", "keypoints": "keypoints", "search": "ANN + verification + re-rank",
                     "total": "whole query (mean)"}[stage]
            rows.append(_against({"stage": f"query ({row['variant']}, {count} queries): {label}", "ms a photo": ms,
                                  "passes": passes}, pass_ms))
        rows[-1]["stage"] += f"; vs before {row['time vs today (median, IQR)']}"
    return rows


def start_up(index: Path, baseline: Path | None, runs: int) -> list[dict]:
    """Seconds until the page answers, this code and the baseline's started alternately."""
    trees = [("this code", REPO_ROOT)] + ([("baseline", baseline)] if baseline else [])
    times: dict[str, list[float]] = {name: [] for name, _ in trees}
    for _, tree in trees:  # untimed: the file cache warm for both, this code's checked exports recorded
        with launched_app(index.resolve(), env={"PYTHONPATH": str(tree)}, root=tree):
            pass
    for _ in range(runs):
        for name, tree in trees:
            env = {"PYTHONPATH": str(tree)}
            with launched_app(index.resolve(), env=env, root=tree) as (_, seconds):
                times[name].append(seconds)
    rows = [{"stage": f"app start until the page answers ({name})", "ms a photo": round(1000 * statistics.median(t)),
             "in ceiling passes": "", "share of ceiling": f"runs {', '.join(f'{s:.1f}' for s in t)} s"}
            for name, t in times.items()]
    if baseline:
        ratios = [a / b for a, b in zip(times["this code"], times["baseline"], strict=True)]
        rows[0]["stage"] += f"; vs baseline {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
    return rows


LOAD = """
import sys, time
import lookalike.products.search, model_zoo.face_detection
start = time.perf_counter()
lookalike.products.search.ProductSearcher.load(sys.argv[1])
model_zoo.face_detection.FaceDetector()
print(time.perf_counter() - start)
"""


def model_load(index: Path, baseline: Path | None, runs: int) -> list[dict]:
    """Seconds to load the index's searcher and the face detector once imports are done (the part of the start
    the checked exports change), in fresh processes, this code and the baseline's alternately."""
    import subprocess

    trees = [("this code", REPO_ROOT)] + ([("baseline", baseline)] if baseline else [])
    times: dict[str, list[float]] = {name: [] for name, _ in trees}
    for run in range(runs + 1):
        for name, tree in trees:
            done = subprocess.run([sys.executable, "-c", LOAD, str(index.resolve())], cwd=tree, check=True,
                                  capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tree)})
            if run:  # the first of each: untimed, exports checked and recorded
                times[name].append(float(done.stdout.split()[-1]))
    rows = [{"stage": f"index + face detector load after imports ({name})",
             "ms a photo": round(1000 * statistics.median(t)), "in ceiling passes": "",
             "share of ceiling": f"runs {', '.join(f'{s:.1f}' for s in t)} s"} for name, t in times.items()]
    if baseline:
        ratios = [a / b for a, b in zip(times["this code"], times["baseline"], strict=True)]
        rows[0]["stage"] += f"; vs baseline {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
    return rows


def face_verify(runs: int, pass_ms: float) -> list[dict]:
    from lookalike.evaluation.face_pairs import read_lfw_pairs
    from lookalike.faces.pipeline import FacePipeline
    from lookalike.faces.verify import FaceVerifier
    from lookalike.paths import data_dir

    faces = data_dir() / "faces"
    pair = next(p for p in read_lfw_pairs(faces / "pairs.txt") if p.same)
    first, second = faces / pair.image1, faces / pair.image2
    verifier = FaceVerifier()
    verifier.warm_up()
    times = []
    for run in range(runs + 3):
        start = time.perf_counter()
        verifier.verify(first, second)
        if run >= 3:
            times.append(1000.0 * (time.perf_counter() - start))
    verifier.close()
    pipeline = FacePipeline()
    pipeline.warm_up()
    split = [pipeline.embed(load_image(first)).timings_ms for _ in range(runs)]
    rows = [{"stage": "face verify, two 250x250 photos (p50)", "ms a photo": statistics.median(times), "passes": 0}]
    for stage in ("detect", "align_embed"):
        rows.append({"stage": f"face: {stage} one photo, in-process (p50)",
                     "ms a photo": statistics.median(t[stage] for t in split), "passes": 0})
    return [_against(row, pass_ms) for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True, help="a default build's index")
    parser.add_argument("--queries", type=Path, required=True, help="held-out queries' manifest (CSV)")
    parser.add_argument("--every", type=int, default=20, help="time every n-th query")
    parser.add_argument("--photos", type=int, default=64, help="catalog photos the build's stages are timed on")
    parser.add_argument("--baseline", type=Path, help="a copy of the code to compare the app's start with")
    parser.add_argument("--starts", type=int, default=2, help="app starts of each tree")
    parser.add_argument("--face-runs", type=int, default=20)
    parser.add_argument("--skip", nargs="*", default=[], choices=["build", "query", "load", "start", "face"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    passes_per_s = ceiling()
    pass_ms = 1000.0 / passes_per_s
    load = os.getloadavg()[0]
    rows = [{"stage": f"ceiling: Lite1 240 px, batch {CEILING_BATCH}, onnxruntime", "ms a photo": round(pass_ms, 2),
             "in ceiling passes": 1, "share of ceiling": f"{passes_per_s:.0f} passes/s = "
             f"{passes_per_s * GFLOP_PER_PASS:.0f} GFLOP/s"}]
    searcher = ProductSearcher.load(args.index)
    if "build" not in args.skip:
        rows += build_stages(searcher, args.photos, pass_ms)
    searcher.close()
    if "query" not in args.skip:
        rows += query_stages(args.index, args.queries, args.every, pass_ms)
    if "load" not in args.skip:
        rows += model_load(args.index, args.baseline, 2 * args.starts)
    if "start" not in args.skip:
        rows += start_up(args.index, args.baseline, args.starts)
    if "face" not in args.skip:
        rows += face_verify(args.face_runs, pass_ms)
    text = (f"{os.cpu_count()} cores, load average {load:.1f} at the start and {os.getloadavg()[0]:.1f} at the "
            f"end; index {args.index}\n\n{markdown_table(rows)}")
    show(text, args.out)


if __name__ == "__main__":
    main()
