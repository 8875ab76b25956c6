"""Speed of face identification: one photo against a 10,000-face gallery, warm, and the gallery build's rate.

    python bench/identify.py [--model arcface_mobilefacenet] [--faces-in-gallery 10000] [--runs 60]

Identify: the LFW protocol's gallery (`lfw_split`, embeddings from the content cache) padded to
`--faces-in-gallery` faces with SYNTHETIC entries, labelled "synthetic-NNNNN": unit mixtures of two real
gallery faces plus noise, scaled to the real norms, so the store's trees hold a realistic cloud. The padding
is for timing only (no accuracy figure comes from it, beyond checking the timed probes are still named).
Each timed call is `FaceGallery.identify` on one 250x250 LFW probe photo, detection and embedding included,
in the calling process (as `lookalike.identify` runs), after warm-up.

Build rate: `build_gallery` on `--build-photos` gallery photos with an empty embedding cache, against the
face pipeline alone (`ParallelFacePipeline.run`, largest face only) on the same photos, both with the
default helper processes, alternated so that other load on the machine hits both alike.

Not a test: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

from lookalike.evaluation.identification import lfw_split  # noqa: E402
from lookalike.faces import gallery_index  # noqa: E402
from lookalike.faces.gallery_build import build_gallery  # noqa: E402
from lookalike.faces.gallery_index import FaceGallery  # noqa: E402
from lookalike.faces.gallery_manifest import GalleryManifest  # noqa: E402
from lookalike.faces.labelled import labelled_face, read_labelled  # noqa: E402
from lookalike.faces.photo_faces import embed_photos  # noqa: E402
from lookalike.faces.process_pool import EmbedJob, ParallelFacePipeline  # noqa: E402
from lookalike.images.loading import load_image  # noqa: E402
from lookalike.paths import cache_dir, data_dir  # noqa: E402
from lookalike.vectors.stores import create_store, parse_store  # noqa: E402
from model_zoo.face_embedders import DEFAULT_FACE_MODEL, get_face_cfg  # noqa: E402

SYNTHETIC = "synthetic-"


def padded_gallery(gallery_csv: Path, model: str, faces: int, out: Path, seed: int = 0) -> set[str]:
    """Write the real gallery's faces plus synthetic ones up to `faces` into the index `out`; returns the
    real people in it."""
    photos = read_labelled(gallery_csv)
    embedded = embed_photos([p.path for p in photos], model)
    rows, vectors = [], []
    for item, photo in zip(photos, embedded.photos, strict=True):
        index = labelled_face(photo, item.box)[0] if photo else None
        if index is not None:
            rows.append({"id": len(rows), "person": item.person, "path": str(item.path), "sha256": "",
                         "box": list(photo.faces[index].box), "given_box": None})
            vectors.append(photo.faces[index].vector)
    real = np.stack(vectors)
    norms = np.linalg.norm(real, axis=1)
    rng = np.random.default_rng(seed)
    count = max(0, faces - len(real))
    pairs = rng.integers(0, len(real), (count, 2))
    mixed = real[pairs[:, 0]] / norms[pairs[:, 0], None] + real[pairs[:, 1]] / norms[pairs[:, 1], None]
    mixed += rng.normal(0, 0.5 / np.sqrt(real.shape[1]), mixed.shape)
    mixed *= (rng.choice(norms, count) / np.linalg.norm(mixed, axis=1))[:, None]
    rows += [{"id": len(rows) + i, "person": f"{SYNTHETIC}{i:05d}", "path": "synthetic", "sha256": "",
              "box": [0, 0, 0, 0], "given_box": None} for i in range(count)]
    cfg = get_face_cfg(model)
    out.mkdir(parents=True)
    store = create_store(parse_store("annoy"), out, cfg.dim, 32, out.name)
    entry = gallery_index.write_faces(out, rows, np.vstack([real, mixed]).astype(np.float32), store)
    GalleryManifest(model=model, metric=cfg.metric, dim=cfg.dim, faces=len(rows), store={**entry, "address": "annoy"},
                    extra={"synthetic_faces": count, "note": "padded for the speed benchmark: not for accuracy"}
                    ).write(out)
    print(f"{model}: gallery of {len(real)} LFW faces + {count} synthetic ones")
    return {row["person"] for row in rows[: len(real)]}


def percentiles(times: list[float]) -> tuple[float, float]:
    return statistics.median(times), statistics.quantiles(times, n=20, method="inclusive")[18]


def time_identify(index: Path, probes: list[tuple[Path, str]], runs: int) -> None:
    gallery = FaceGallery.load(index)
    gallery.pipeline.warm_up()
    for path, _ in probes[:3]:
        gallery.identify(path)
    totals, cpu, stages, named = [], [], {}, 0
    for path, person in probes[:runs]:
        start, start_cpu = time.perf_counter(), time.process_time()
        result = gallery.identify(path)
        totals.append(1000 * (time.perf_counter() - start))
        cpu.append(1000 * (time.process_time() - start_cpu))
        for stage, ms in result.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
        named += person in [face.decision for face in result.faces]
    p50, p95 = percentiles(totals)
    print(f"identify against {len(gallery)} faces, {len(totals)} photos: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
          f"(wall, per call); CPU time p50 {statistics.median(cpu):.1f} ms (all threads of this process: what "
          f"the call costs, less swayed by other load); known probes named: {named}/{len(totals)}")
    for stage, values in stages.items():
        print(f"  {stage:12} p50 {statistics.median(values):7.2f} ms")
    vector = np.ones(gallery.manifest.dim, np.float32)
    for exact in (False, True):
        gallery.matches(vector, exact=exact)
        times = []
        for _ in range(50):
            start = time.perf_counter()
            gallery.matches(vector, exact=exact)
            times.append(1000 * (time.perf_counter() - start))
        label = "brute force" if exact else "vector store (annoy)"
        print(f"  search only, {label}: p50 {statistics.median(times):.2f} ms")
    gallery.close()


def time_build(gallery_csv: Path, model: str, count: int, work: Path) -> None:
    """Photos a second: the build from an empty embedding cache, and the pipeline alone on the same photos,
    each timed from before its helper processes start (a build pays for them too)."""
    photos = read_labelled(gallery_csv)[:count]
    subset = work / "subset.csv"
    with subset.open("w", newline="") as handle:
        csv.writer(handle).writerows([("path", "person"), *((str(p.path), p.person) for p in photos)])
    exports = cache_dir() / "onnx"  # the detector's ONNX exports: reused, so no build pays for exporting them
    rates: dict[str, list[float]] = {"build_gallery, empty cache": [], "face pipeline alone": []}
    for attempt in range(2):
        fresh = work / f"cache-{attempt}"
        shutil.copytree(exports, fresh / "onnx")
        os.environ["LOOKALIKE_CACHE"] = str(fresh)  # no embedding cached: every photo is embedded
        start = time.perf_counter()
        build_gallery(subset, work / f"index-{attempt}", model=model, quiet=True)
        rates["build_gallery, empty cache"].append(len(photos) / (time.perf_counter() - start))
        start = time.perf_counter()
        with ParallelFacePipeline(model) as pipeline:
            pipeline.run([EmbedJob(load_image(p.path), str(p.path), centred=True) for p in photos])
        rates["face pipeline alone"].append(len(photos) / (time.perf_counter() - start))
    for label, values in rates.items():
        print(f"  {label:30} {', '.join(f'{v:.1f}' for v in values)} photos/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_FACE_MODEL)
    parser.add_argument("--faces", type=Path, default=data_dir() / "faces")
    parser.add_argument("--faces-in-gallery", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--build-photos", type=int, default=200, help="photos in the build-rate part (0: skip)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_identify_"))
    gallery_csv, probes_csv = lfw_split(args.faces, work)
    people = padded_gallery(gallery_csv, args.model, args.faces_in_gallery, work / "index")
    known = [(p.path, p.person) for p in read_labelled(probes_csv) if p.person in people]
    step = max(1, len(known) // args.runs)
    time_identify(work / "index", known[::step], args.runs)
    if args.build_photos:
        print(f"build rate on {args.build_photos} LFW photos (2 helper processes):")
        time_build(gallery_csv, args.model, args.build_photos, work)


if __name__ == "__main__":
    main()
