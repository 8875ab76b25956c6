"""Speed levers of the default face pipeline (arcface_mobilefacenet) scored on the LFW pairs (issue 37): every
photo named by the pairs is detected once per detector setting and its chosen face embedded by each network
variant, so the variants' verification figures are paired (the same pairs, the same folds) and their times
interleaved photo by photo.

Variants: the detector's smallest face (MTCNN `min_face_size`, 20 today, and `--min-face`), the crop with or
without its mirror image (today: with), and the network in fp32 (today) or INT8 (onnxruntime static
quantization, QDQ, per channel, calibrated on `--calibration` aligned faces of LFW photos that no pair names;
with `--int8`).

    python bench/face_levers.py [--faces ../shared/data/faces] [--min-face 40] [--limit N] [--out bench/out/faces.md]

Prints per variant: 5-fold accuracy (the report's protocol) and on the `--choose` folds and the others apart,
the paired difference of per-pair correctness against today (each fold judged at the threshold learnt on the
other folds) with its standard error, AUC, TAR@FAR=1e-3 and the median time a photo of its detection and
embedding. Vectors are kept in `--cache` (npz) so a rerun only scores. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lookalike.evaluation.face_metrics import auc, best_threshold, fold_labels, tar_at_far  # noqa: E402
from lookalike.evaluation.face_pairs import load_pairs  # noqa: E402
from lookalike.evaluation.report import markdown_table, show  # noqa: E402
from lookalike.faces.pipeline import _default_face  # noqa: E402
from lookalike.images.loading import load_image  # noqa: E402
from lookalike.paths import data_dir  # noqa: E402
from model_zoo.face_detection import Detection, FaceDetector, centre_box  # noqa: E402
from model_zoo.face_embedders import create_face_model, distances  # noqa: E402


def _face(detector: FaceDetector, image) -> Detection:
    """The face `FacePipeline.embed(centred=True)` takes (the evaluation's choice)."""
    found = detector.detect(image)
    if not found:
        return Detection(centre_box(*image.size), 0.0, None, "centre")
    return found[_default_face(found, image, True)]


def int8_session(model, chips: np.ndarray, folder: Path):
    """The face network quantized to INT8, calibrated on `chips` (uint8 [N, 112, 112, 3])."""
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    folder.mkdir(parents=True, exist_ok=True)
    pixels = ((chips.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
    name = model._onnx.input_name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(pixels)

        def get_next(self):
            row = next(self.rows, None)
            return None if row is None else {name: row[None]}

    import onnx
    from onnx import version_converter

    pre, out, opset13 = folder / "face_pre.onnx", folder / "face_int8.onnx", folder / "face_opset13.onnx"
    onnx.save(version_converter.convert_version(onnx.load(str(model._onnx.path)), 13), str(opset13))  # per-channel
    quant_pre_process(str(opset13), str(pre))
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])

    def forward(batch: np.ndarray) -> np.ndarray:
        x = ((batch.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
        vectors = session.run(None, {name: np.ascontiguousarray(x)})[0]
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    return forward


def embed_all(paths: list[Path], min_faces: list[int], calibration: list[Path], cache: Path, int8: bool) -> dict:
    import torch

    torch.set_num_threads(1)  # as in a verify helper process
    model = create_face_model("arcface_mobilefacenet")
    detectors = {size: FaceDetector(min_face_size=size) for size in min_faces}
    networks = {"fp32": model._forward}
    if int8:
        chips = np.stack([np.asarray(model.align(np.asarray(image), _face(detectors[20], image)))
                          for image in map(load_image, calibration)])
        networks["int8"] = int8_session(model, chips, cache.parent / "face_int8")
    out: dict[str, list] = {}
    for number, path in enumerate(paths):
        image = load_image(path)
        pixels = np.asarray(image)
        for size, detector in detectors.items():
            start = time.perf_counter()
            face = _face(detector, image)
            out.setdefault(f"detect{size}_ms", []).append(1000 * (time.perf_counter() - start))
            chip = np.asarray(model.align(pixels, face))
            both = np.stack([chip, chip[:, ::-1]])
            for kind, forward in networks.items():
                start = time.perf_counter()
                plain = forward(chip[None])[0]
                one = 1000 * (time.perf_counter() - start)
                start = time.perf_counter()
                pair = forward(both)
                out.setdefault(f"{kind}_plain_ms", []).append(one)
                out.setdefault(f"{kind}_mirror_ms", []).append(1000 * (time.perf_counter() - start))
                out.setdefault(f"d{size}_{kind}_plain", []).append(plain)
                out.setdefault(f"d{size}_{kind}_mirror", []).append(pair.mean(axis=0))
        if number % 200 == 0:
            print(f"{number}/{len(paths)}", file=sys.stderr, flush=True)
    arrays = {key: np.asarray(value) for key, value in out.items()}
    np.savez(cache, paths=np.asarray([str(p) for p in paths]), **arrays)
    return arrays


def _correct(dist: np.ndarray, same: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per pair: right or wrong at its fold's threshold, learnt on the other folds."""
    right = np.zeros(len(dist), bool)
    for fold in np.unique(labels):
        test = labels == fold
        threshold, _ = best_threshold(dist[~test], same[~test])
        right[test] = (dist[test] <= threshold) == same[test]
    return right


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=data_dir() / "faces")
    parser.add_argument("--min-face", type=int, default=40)
    parser.add_argument("--int8", action="store_true", help="score the INT8 network too")
    parser.add_argument("--calibration", type=int, default=64)
    parser.add_argument("--choose", type=int, nargs="+", default=[1, 2], help="the folds a lever is chosen on")
    parser.add_argument("--limit", type=int, help="the first N photos only (a smoke run)")
    parser.add_argument("--folds", type=int, nargs="+", help="the pairs of these folds only (default: all)")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "bench" / "out" / "face_levers.npz")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    pairs = load_pairs(args.faces)
    if args.folds:
        pairs = [p for p in pairs if p.fold in args.folds]
    images = sorted({p.image1 for p in pairs} | {p.image2 for p in pairs})
    named = set(images)
    others = sorted(p.relative_to(args.faces).as_posix() for p in args.faces.glob("*/*.jpg"))
    calibration = [args.faces / name for name in others if name not in named][:: 7][: args.calibration]
    if args.limit:
        images = images[: args.limit]
        pairs = [p for p in pairs if p.image1 in set(images) and p.image2 in set(images)]
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    if args.cache.is_file() and not args.limit:
        arrays = dict(np.load(args.cache))
    else:
        arrays = embed_all([args.faces / i for i in images], [20, args.min_face], calibration, args.cache, args.int8)
    row = {image: i for i, image in enumerate(images)}
    first, second = [row[p.image1] for p in pairs], [row[p.image2] for p in pairs]
    same = np.array([p.same for p in pairs])
    labels = fold_labels(np.array([p.fold for p in pairs]))
    chosen = np.isin(labels, args.choose)
    base = "d20_fp32_mirror"
    results = {}
    for key in [k for k in arrays if k.startswith("d") and not k.endswith("_ms")]:
        dist = distances(arrays[key][first], arrays[key][second], "cosine")
        results[key] = dist, _correct(dist, same, labels)
    rows = []
    for key, (dist, right) in results.items():
        size, kind, view = key[1:].split("_")
        diff = right.astype(float) - results[base][1]
        entry = {"variant": f"min face {size}, {kind}, {'with' if view == 'mirror' else 'without'} mirror",
                 "accuracy (5-fold)": f"{right.mean():.4f}"}
        for label, mask in (("choose folds", chosen), ("other folds", ~chosen)):
            entry[f"diff, {label}"] = f"{diff[mask].mean():+.4f} ± {diff[mask].std() / np.sqrt(mask.sum()):.4f}"
        entry["diff, all"] = f"{diff.mean():+.4f} ± {diff.std() / np.sqrt(len(diff)):.4f}"
        tar = tar_at_far(dist, same, 1e-3) if (~same).sum() >= 1000 else float("nan")
        entry.update({"AUC": round(auc(dist, same), 4), "TAR@1e-3": round(tar, 4),
                      "detect ms": round(float(np.median(arrays[f"detect{size}_ms"])), 1),
                      "embed ms": round(float(np.median(arrays[f"{kind}_{view}_ms"])), 1)})
        rows.append(entry)
    text = f"{len(pairs)} LFW pairs, {len(images)} photos; chosen on folds {args.choose}\n\n{markdown_table(rows)}"
    show(text, args.out)


if __name__ == "__main__":
    main()
