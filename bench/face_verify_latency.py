"""Warm latency of `FaceVerifier.verify` on two 250x250 LFW photos, against baselines timed in the
same run: the same verify in one process (no helper), the same verify with `dlib_resnet` (the previous
default), MTCNN detection alone on both photos, and dlib's network alone (both aligned faces and their
mirror images) in our torch port against dlib's own runtime (what `dlib_resnet` ran on before the port).

    python bench/face_verify_latency.py [--runs 30] [--model arcface_mobilefacenet]

Not a test: numbers depend on the machine; compare ratios, which are measured side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

from lookalike.evaluation.face_pairs import read_lfw_pairs  # noqa: E402
from lookalike.faces.verify import FaceVerifier  # noqa: E402
from lookalike.images.loading import load_image  # noqa: E402
from lookalike.paths import data_dir  # noqa: E402
from model_zoo.face_detection import FaceDetector  # noqa: E402
from model_zoo.face_embedders import DEFAULT_FACE_MODEL, create_face_model, get_face_cfg  # noqa: E402
from model_zoo.weights import packaged_model_path  # noqa: E402


def percentiles(call: Callable[[], object], runs: int, warm: int = 3) -> tuple[float, float]:
    """p50 and p95 wall time of `call` in ms, after `warm` untimed calls."""
    for _ in range(warm):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    cuts = statistics.quantiles(times, n=20, method="inclusive")
    return statistics.median(times), cuts[18]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--model", default=DEFAULT_FACE_MODEL)
    parser.add_argument("--faces", type=Path, default=data_dir() / "faces")
    args = parser.parse_args()

    pair = next(p for p in read_lfw_pairs(args.faces / "pairs.txt") if p.same)
    first, second = args.faces / pair.image1, args.faces / pair.image2
    print(f"photos: {pair.image1}, {pair.image2} ({load_image(first).size[0]}px); {args.runs} warm runs each")

    rows: dict[str, tuple[float, float]] = {}
    runs = [(args.model, 2), (args.model, 1)] + [("dlib_resnet", 2)] * (args.model != "dlib_resnet")
    for model_name, processes in runs:
        verifier = FaceVerifier(model_name, processes=processes)
        verifier.warm_up()
        label = f"verify {model_name}, {processes} process{'es' if processes > 1 else ''}"
        rows[label] = percentiles(lambda v=verifier: v.verify(first, second), args.runs)
        verifier.close()
    detector = FaceDetector()
    images = [load_image(first), load_image(second)]
    rows["MTCNN detection only, both photos"] = percentiles(
        lambda: [detector.detect(i) for i in images], args.runs
    )

    import dlib
    import numpy as np
    import torch

    torch.set_num_threads(1)  # as in the verify helpers; dlib's runtime runs on one thread too
    pixels = [np.asarray(image) for image in images]
    faces = [detector.detect(image)[0] for image in images]
    for model_name in dict.fromkeys([args.model, "dlib_resnet"]):
        model = create_face_model(model_name)
        chips = [np.asarray(model.align(p, face)) for p, face in zip(pixels, faces, strict=True)]
        label = f"{model_name} network only, 2 faces + mirrors"
        rows[label] = percentiles(lambda m=model, c=chips: m.embed_faces(c), args.runs)
    chips += [np.ascontiguousarray(chip[:, ::-1]) for chip in chips]  # dlib_resnet's, as dlib would get them
    cfg = get_face_cfg("dlib_resnet")
    native = dlib.face_recognition_model_v1(str(packaged_model_path(cfg.weights_source, cfg.weights_file)))
    rows["dlib_resnet network only, dlib runtime"] = percentiles(
        lambda: native.compute_face_descriptor(chips), args.runs
    )

    main_p50 = next(iter(rows.values()))[0]
    print(f"\n{'path':52} {'p50 ms':>8} {'p95 ms':>8} {'p50 / verify':>13}")
    for label, (p50, p95) in rows.items():
        print(f"{label:52} {p50:8.1f} {p95:8.1f} {p50 / main_p50:13.2f}")


if __name__ == "__main__":
    main()
