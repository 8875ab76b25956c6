"""Face sub-commands of `lookalike`: `verify` and `eval-faces` (1:1), `build-faces`, `identify` and
`eval-identify` (1:N against a gallery index)."""

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


LISTED = 10  # photos or people named in a warning before "and N more"


def _listing(items: list[str]) -> str:
    more = f", and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return "; ".join(items[:LISTED]) + more


def run_build_faces(args: argparse.Namespace) -> int:
    from lookalike.faces.gallery_build import build_gallery

    report = build_gallery(args.gallery, args.out, model=args.model, weights=args.weights, store=args.store,
                           trees=args.trees, update=args.update, quiet=args.json)
    lines = [
        f"indexed {report['faces']} faces of {report['people']} people from {report['photos']} photos into "
        f"{args.out} ({report['model']}, {report['store']['kind']}; {report['build_seconds']:.1f} s, "
        f"{report['photos_embedded']} photos embedded)"
    ]
    if update := report.get("update"):
        lines.append(f"update: {update['kept']} faces kept, {update['added']} added, {update['removed']} removed")
    if report["photos_with_several_faces"]:
        lines.append(f"{report['photos_with_several_faces']} photos hold several faces: the labelled one is "
                     f"{report['face_choice']}; {report['faces_not_labelled']} other faces were not indexed")
    if without := report["photos_without_face"]:
        lines.append(f"warning: {len(without)} photo(s) without a usable face: "
                     + _listing([f"{row['path']} ({row['reason']})" for row in without]))
    if unreadable := report["unreadable"]:
        lines.append(f"warning: {len(unreadable)} unreadable file(s): "
                     + _listing([f"{row['path']} ({row['error']})" for row in unreadable]))
    if people := report["people_without_face"]:
        lines.append(f"warning: no usable face of {len(people)} of the people, who cannot be identified: "
                     + _listing(people))
    print_result(report, args.json, "\n".join(lines))
    return 0


def run_identify(args: argparse.Namespace) -> int:
    from lookalike.faces.any_gallery import open_gallery

    gallery = open_gallery(args.index)  # a face gallery, or a people index's named people
    try:
        result = gallery.identify(args.photo, top_k=args.top_k, threshold=args.threshold)
    finally:
        gallery.close()
    lines = []
    for number, face in enumerate(result.faces, start=1):
        best = face.matches[0].distance if face.matches else None
        reason = "" if best is None else f" (distance {best:.4f} {'<=' if face.known else '>'} {result.threshold:.4f})"
        lines.append(f"face {number} of {len(result.faces)} at {[round(v) for v in face.box]}: {face.decision}{reason}")
        lines += [
            f"  {rank}. {match.person}  distance {match.distance:.4f}  similarity {match.similarity:.4f}  "
            f"{match.photo}"
            for rank, match in enumerate(face.matches, start=1)
        ]
    lines.append(f"({result.model}; {result.gallery_faces} gallery faces; {result.timings_ms['total']:.0f} ms)")
    print_result(result.to_dict(), args.json, "\n".join(lines))
    return 0


def run_eval_identify(args: argparse.Namespace) -> int:
    from lookalike.evaluation.identification import evaluate_identification

    summary = evaluate_identification(args.index, args.probes, quiet=args.json)
    lines = []
    for key, value in summary.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{key}:")
            lines += [f"  {row}" for row in value]
        else:
            lines.append(f"{key}: {value}")
    print_result(summary, args.json, "\n".join(lines))
    return 0


def run_split_faces(args: argparse.Namespace) -> int:
    from lookalike.evaluation.identification import lfw_split

    gallery, probes = lfw_split(args.faces_dir, args.out)
    counts = [len(path.read_text().splitlines()) - 1 for path in (gallery, probes)]
    payload = {"gallery": str(gallery), "probes": str(probes), "gallery_photos": counts[0], "probe_photos": counts[1]}
    print_result(payload, args.json, f"wrote {gallery} ({counts[0]} photos) and {probes} ({counts[1]} photos)")
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

    build = subparsers.add_parser("build-faces", help="build a face gallery index from named photos (1:N)")
    build.add_argument("gallery", help="folder of <person>/<photo> files, or a CSV manifest path,person[,x1,y1,x2,y2]")
    build.add_argument("--out", required=True, help="the gallery index folder (replaced atomically)")
    build.add_argument("--model", help=f"face model (default: {DEFAULT_FACE_MODEL}; --update keeps the index's)")
    build.add_argument("--weights", help="weights file for models without default weights here")
    build.add_argument("--store", help="vector store: annoy (default), milvus, milvus:///path.db, milvus://host:port")
    build.add_argument("--trees", type=int, help="Annoy trees (default: 32)")
    build.add_argument("--update", action="store_true",
                       help="start from the index at --out: embed new or changed photos, drop removed ones")
    build.add_argument("--json", action="store_true", help="print the build report as JSON")
    build.set_defaults(func=run_build_faces)

    ident = subparsers.add_parser("identify", help="name every face of a photo from a face gallery index")
    ident.add_argument("photo")
    ident.add_argument("--index", required=True,
                       help="the gallery index folder (build-faces), or a people index (cluster-faces)")
    ident.add_argument("--top-k", type=int, default=5, help="gallery people listed per face (default: 5)")
    ident.add_argument("--threshold", type=float,
                       help="name a face at or below this distance, else unknown (default: the model's calibrated one)")
    ident.add_argument("--json", action="store_true", help="print JSON")
    ident.set_defaults(func=run_identify)

    split = subparsers.add_parser(
        "split-faces", help="write gallery.csv / probes.csv of the LFW identification protocol (no copies)"
    )
    split.add_argument("faces_dir", help="folder of <person>/<photo> photos (LFW)")
    split.add_argument("--out", required=True, type=Path, help="folder for the two manifests")
    split.add_argument("--json", action="store_true", help="print JSON")
    split.set_defaults(func=run_split_faces)

    evaluate_ident = subparsers.add_parser("eval-identify", help="score a face gallery on labelled probe photos")
    evaluate_ident.add_argument("--index", required=True,
                       help="the gallery index folder (build-faces), or a people index (cluster-faces)")
    evaluate_ident.add_argument("--probes", required=True,
                                help="folder of <person>/<photo> files, or a CSV manifest path,person")
    evaluate_ident.add_argument("--json", action="store_true", help="print JSON")
    evaluate_ident.set_defaults(func=run_eval_identify)
