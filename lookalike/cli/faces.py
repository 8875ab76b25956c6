"""`verify` and `eval-faces` sub-commands of `lookalike`."""

from __future__ import annotations

import argparse
from pathlib import Path

from lookalike.cli.common import UserError, print_result
from model_zoo.registry import DEFAULT_FACE_MODEL


def run_verify(args: argparse.Namespace) -> int:
    from lookalike.faces.verify import FaceVerifier

    if args.any_face and args.face_index:
        raise UserError("use --face-index or --any-face, not both")
    # one-shot command: a helper process would cost more to start than it saves
    verifier = FaceVerifier(args.model, weights=args.weights, processes=1)
    result = verifier.verify(
        args.image1,
        args.image2,
        threshold=args.threshold,
        face_index=args.face_index,
        faces="all" if args.any_face else "largest",
    )
    payload = result.to_dict()
    verdict = "same person" if result.same_person else "different people"
    compared = "; ".join(
        f"image {i + 1}: face {face.index + 1} of {face.count} at {[round(v) for v in face.box]}"
        for i, face in enumerate(result.faces)
    )
    searched = f"; closest of {result.pairs_compared} pairs" if result.pairs_compared > 1 else ""
    text = (
        f"{verdict}: {verifier.metric} distance "
        f"{result.distance:.4f} {'<=' if result.same_person else '>'} threshold {result.threshold:.4f}\n"
        f"compared {compared}{searched}\n"
        f"({result.model}; {result.timings_ms['total']:.0f} ms)"
    )
    print_result(payload, args.json, text)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    faces_dir = Path(args.faces_dir)
    if not faces_dir.is_dir():
        raise UserError(f"faces folder not found: {faces_dir}")
    if args.limit is not None and args.limit < 2:
        raise UserError("--limit must be at least 2 (one matched and one mismatched pair)")
    from lookalike.evaluation.face_metrics import threshold_sweep
    from lookalike.evaluation.faces import evaluate
    from model_zoo.face_embedders import get_face_cfg

    evaluation = evaluate(faces_dir, args.pairs, args.model, args.weights, args.limit)
    summary = dict(evaluation.summary)
    if args.sweep:
        summary["sweep"] = threshold_sweep(
            evaluation.distances, evaluation.same, *get_face_cfg(args.model).sweep
        )
    if args.plot:
        evaluation.plot_roc(args.plot)
        summary["plot"] = str(args.plot)
    lines = [f"{key}: {value}" for key, value in summary.items() if key != "sweep"]
    if args.sweep:
        lines += ["", "threshold  accuracy  TAR     FAR"]
        lines += [
            f"{r['threshold']:9.2f}  {r['accuracy']:.4f}    {r['tar']:.4f}  {r['far']:.4f}"
            for r in summary["sweep"]
        ]
    print_result(summary, args.json, "\n".join(lines))
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    verify = subparsers.add_parser("verify", help="tell whether two photos show the same person")
    verify.add_argument("image1")
    verify.add_argument("image2")
    verify.add_argument("--model", default=DEFAULT_FACE_MODEL, help=f"face model (default: {DEFAULT_FACE_MODEL})")
    verify.add_argument("--weights", help="weights file for models without default weights here")
    verify.add_argument(
        "--threshold", type=float, help="distance threshold (default: the model's calibrated one)"
    )
    verify.add_argument(
        "--face-index", type=int, nargs=2, metavar=("I", "J"), help="face to use in each photo (0 = largest)"
    )
    verify.add_argument(
        "--any-face",
        action="store_true",
        help="compare every face of one photo with every face of the other; report the closest pair",
    )
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.set_defaults(func=run_verify)

    evaluate_parser = subparsers.add_parser("eval-faces", help="score a face model on verification pairs")
    evaluate_parser.add_argument("faces_dir", help="folder of <identity>/<image> photos")
    evaluate_parser.add_argument(
        "--pairs",
        type=Path,
        help="LFW pairs.txt or fold,same,image1,image2 CSV (default: FACES_DIR/pairs.txt, "
        "else pairs generated from the folders)",
    )
    evaluate_parser.add_argument("--model", default=DEFAULT_FACE_MODEL)
    evaluate_parser.add_argument("--weights", help="weights file for models without default weights here")
    evaluate_parser.add_argument("--plot", type=Path, help="write the ROC curve to this PNG")
    evaluate_parser.add_argument("--json", action="store_true", help="print JSON")
    evaluate_parser.add_argument(
        "--sweep", action="store_true", help="accuracy at each threshold of the model's range"
    )
    evaluate_parser.add_argument(
        "--limit", type=int, help="use only N pairs (balanced across folds and classes)"
    )
    evaluate_parser.set_defaults(func=run_eval)
