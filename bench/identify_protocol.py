"""The LFW identification protocol (1:N, open set) per face model: split, build the gallery index, score probes.

    python bench/identify_protocol.py [--models arcface_mobilefacenet dlib_resnet] [--out DIR] [--store annoy]

Step by step, the same as:

    lookalike split-faces ../shared/data/faces --out DIR
    lookalike build-faces DIR/gallery.csv --out DIR/MODEL --model MODEL
    lookalike eval-identify --index DIR/MODEL --probes DIR/probes.csv --json

The split (`lfw_split`): the gallery is the first photo of every person with 2+ photos plus every other
single-photo person as a distractor; the probes are the other photos of the known people and the remaining
single-photo people (unknown). Embeddings are cached by content, so a second run only builds and searches.
Prints one JSON object: each model's build report (counts) and evaluation.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

from lookalike.evaluation.identification import evaluate_identification, lfw_split  # noqa: E402
from lookalike.faces.gallery_build import build_gallery  # noqa: E402
from lookalike.paths import data_dir  # noqa: E402

BUILD_KEYS = ("faces", "people", "photos", "people_without_face", "photos_without_face", "unreadable",
              "photos_with_several_faces", "faces_not_labelled", "build_seconds", "embed_photos_per_second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["arcface_mobilefacenet", "dlib_resnet"])
    parser.add_argument("--faces", type=Path, default=data_dir() / "faces")
    parser.add_argument("--out", type=Path, help="where the split and the indexes go (default: a temporary folder)")
    parser.add_argument("--store", default="annoy")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="lfw_identify_"))
    gallery, probes = lfw_split(args.faces, out)
    results = {"split": {"gallery": str(gallery), "probes": str(probes)}}
    for model in args.models:
        print(f"{model}: building the gallery ...", file=sys.stderr, flush=True)
        report = build_gallery(gallery, out / model, model=model, store=args.store)
        print(f"{model}: scoring the probes ...", file=sys.stderr, flush=True)
        results[model] = {
            "build": {key: report[key] for key in BUILD_KEYS},
            "evaluation": evaluate_identification(out / model, probes),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
