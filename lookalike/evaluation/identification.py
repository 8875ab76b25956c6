"""Score open-set face identification (1:N) of a gallery index on labelled probe photos.

Each probe's labelled face is chosen as the gallery's are (nearest the centre, or its manifest box),
embedded through the same pipeline and content cache as the build, and searched the way `identify`
searches: through the index's vector store, so any ANN loss is in the figures (the same search by brute
force is reported beside them). A probe whose person has no face in the gallery is an unknown; a probe
without a usable face is never accepted (a known one counts as missed).

    rank_1, rank_5   share of known probes whose person is the nearest / among the 5 nearest gallery people
    dir_at_far_X     detection and identification rate: share of known probes whose nearest person is right
                     and within the threshold that accepts at most a share X of the unknown probes (FAR)

Standard errors: binomial for rank-k; for DIR at a FAR a bootstrap over both probe sets, with a 95%
interval (`_dir_spread`), since the threshold is itself read off the unknown probes. At FAR 1e-3 with fewer
than 1,000 unknown probes no false accept is allowed: the threshold sits just under the closest unknown
probe, so one photo sets it.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.evaluation.face_pairs import IMAGE_SUFFIXES
from lookalike.faces.gallery_index import FaceGallery
from lookalike.faces.labelled import LabelledPhoto, labelled_face, read_labelled
from lookalike.faces.photo_faces import embed_photos

FARS = (1e-2, 1e-3)
RANKS = (1, 5)
BOOTSTRAP = 1000
EXACT_KEYS = ("rank_1", "rank_5", "dir_at_far_1e-2", "dir_at_far_1e-3")
CLOSEST_UNKNOWN = 5  # the unknown probes nearest a gallery person, listed: they set the strict thresholds


@dataclass
class Outcomes:
    """Per probe: whether its person is in the gallery, the rank of its person among the gallery people
    found (0 = nearest; RANKS[-1] when not among them), and its nearest person's distance (inf: no face)."""

    known: np.ndarray
    rank: np.ndarray
    distance: np.ndarray
    nearest: list[str | None]


def lfw_split(faces_dir: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """Write the LFW identification protocol's gallery and probes as `path,person` manifests in `out_dir`
    (absolute paths; sorted order, no randomness) and return their paths."""
    people: dict[str, list[Path]] = defaultdict(list)
    for photo in sorted(Path(faces_dir).glob("*/*")):
        if photo.suffix.lower() in IMAGE_SUFFIXES and not photo.parent.name.startswith("."):
            people[photo.parent.name].append(photo.resolve())
    if not people:
        raise FileNotFoundError(f"no <person>/<photo> files in {faces_dir}")
    gallery, probes = [], []
    singles = sorted(name for name, photos in people.items() if len(photos) == 1)
    for name, photos in sorted(people.items()):
        if len(photos) > 1:
            gallery.append((photos[0], name))
            probes += [(photo, name) for photo in photos[1:]]
    for i, name in enumerate(singles):
        (gallery if i % 2 == 0 else probes).append((people[name][0], name))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, rows in (("gallery.csv", gallery), ("probes.csv", probes)):
        path = out_dir / filename
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "person"])
            writer.writerows([str(photo), name] for photo, name in rows)
        written.append(path)
    return written[0], written[1]


def _outcomes(gallery: FaceGallery, probes: list[LabelledPhoto], vectors: list[np.ndarray | None],
              exact: bool) -> Outcomes:
    people = gallery.people
    rank, distance, nearest = [], [], []
    for probe, vector in zip(probes, vectors, strict=True):
        matches = gallery.matches(vector, RANKS[-1], exact=exact) if vector is not None else []
        names = [match.person for match in matches]
        rank.append(names.index(probe.person) if probe.person in names else RANKS[-1])
        distance.append(matches[0].distance if matches else math.inf)
        nearest.append(names[0] if names else None)
    known = np.asarray([probe.person in people for probe in probes], bool)
    return Outcomes(known, np.asarray(rank), np.asarray(distance, np.float64), nearest)


def _binomial(hits: np.ndarray) -> tuple[float | None, float | None]:
    if hits.size == 0:
        return None, None
    share = float(hits.mean())
    return round(share, 4), round(math.sqrt(share * (1 - share) / hits.size), 4)


def _bound(unknown: np.ndarray, far: float) -> float:
    """The distance of the first unknown probe that must be rejected to keep FAR <= `far` (inf: none must)."""
    allowed = math.floor(far * len(unknown) + 1e-9)
    ordered = np.sort(unknown)
    return float(ordered[allowed]) if allowed < len(ordered) else math.inf


def threshold_at_far(unknown: np.ndarray, far: float) -> float:
    """The threshold (accept at or below), rounded down to 4 decimals, that accepts at most a share `far`
    of the unknown probes' nearest distances."""
    bound = _bound(unknown, far)
    if not math.isfinite(bound):
        return math.inf
    threshold = math.floor(bound * 1e4) / 1e4
    return threshold - 1e-4 if threshold >= bound else threshold


def _dir_spread(outcomes: Outcomes, far: float, rng: np.random.Generator) -> tuple[float, list[float]]:
    """Bootstrap standard error and 95% interval of DIR at `far`: known and unknown probes resampled, the
    threshold read again each time. The error is half the central 68% interval: the standard deviation of a
    normal spread, not inflated by the few resamples that draw the closest unknown probes many times over.
    Where one or two unknown probes set the threshold, the spread is lopsided: the interval shows it."""
    right = (outcomes.rank == 0)[outcomes.known]
    known_d, unknown_d = outcomes.distance[outcomes.known], outcomes.distance[~outcomes.known]
    rates = []
    for _ in range(BOOTSTRAP):
        k = rng.integers(0, len(known_d), len(known_d))
        bound = _bound(unknown_d[rng.integers(0, len(unknown_d), len(unknown_d))], far)
        rates.append(float(np.mean(right[k] & (known_d[k] < bound))))
    low, high, lowest, highest = np.percentile(rates, [15.87, 84.13, 2.5, 97.5])
    return round(float(high - low) / 2, 4), [round(float(lowest), 4), round(float(highest), 4)]


def summarise(outcomes: Outcomes, threshold: float | None, seed: int = 0) -> dict[str, Any]:
    """The report's figures for one search of the probes (see the module's docstring)."""
    known, unknown = outcomes.known, ~outcomes.known
    right = (outcomes.rank == 0) & known
    summary: dict[str, Any] = {}
    for rank in RANKS:
        summary[f"rank_{rank}"], summary[f"rank_{rank}_se"] = _binomial((outcomes.rank < rank)[known])
    rng = np.random.default_rng(seed)
    for far in FARS:
        key = f"{far:.0e}".replace("e-0", "e-")
        if not unknown.any() or not known.any():
            summary[f"dir_at_far_{key}"] = None
            continue
        cut = threshold_at_far(outcomes.distance[unknown], far)
        summary[f"dir_at_far_{key}"] = round(float(np.mean((right & (outcomes.distance <= cut))[known])), 4)
        summary[f"dir_at_far_{key}_se"], summary[f"dir_at_far_{key}_ci95"] = _dir_spread(outcomes, far, rng)
        summary[f"threshold_at_far_{key}"] = round(cut, 4) if math.isfinite(cut) else None
        summary[f"far_measured_{key}"] = round(float(np.mean(outcomes.distance[unknown] <= cut)), 5)
    if threshold is not None:
        dir_, dir_se = _binomial((right & (outcomes.distance <= threshold))[known])
        far_, far_se = _binomial((outcomes.distance <= threshold)[unknown])
        summary["at_model_threshold"] = {"threshold": threshold, "dir": dir_, "dir_se": dir_se, "far": far_,
                                         "far_se": far_se}
    return summary


def evaluate_identification(
    index: str | Path, probes: str | Path, processes: int | None = None, quiet: bool = False
) -> dict[str, Any]:
    """Rank-1, rank-5 and DIR at FAR 1e-2 and 1e-3 (with their thresholds and standard errors) of the gallery
    index at `index` on `probes` (`<person>/<photo>` folders or a `path,person[,box]` manifest)."""
    gallery = FaceGallery.load(index)
    try:
        labelled = read_labelled(probes)
        paths = list(dict.fromkeys(probe.path for probe in labelled))
        embedded = embed_photos(paths, gallery.model, gallery.weights, processes, quiet)
        photos = dict(zip(paths, embedded.photos, strict=True))
        vectors: list[np.ndarray | None] = []
        for probe in labelled:
            photo = photos[probe.path]
            index_ = labelled_face(photo, probe.box)[0] if photo is not None else None
            vectors.append(photo.faces[index_].vector if index_ is not None else None)
        searched = _outcomes(gallery, labelled, vectors, exact=False)
        exact = _outcomes(gallery, labelled, vectors, exact=True)
    finally:
        gallery.close()
    missing = np.asarray([vector is None for vector in vectors], bool)
    unknown = ~searched.known
    closest = np.argsort(np.where(unknown, searched.distance, math.inf), kind="stable")[:CLOSEST_UNKNOWN]
    exact_summary = summarise(exact, gallery.threshold)
    return {
        "model": gallery.model,
        "metric": gallery.metric,
        "search": gallery.manifest.store["address"],
        "gallery_faces": len(gallery),
        "gallery_people": len(gallery.people),
        "probes_known": int(searched.known.sum()),
        "probes_unknown": int(unknown.sum()),
        "probes_without_face": {"known": int((missing & ~unknown).sum()), "unknown": int((missing & unknown).sum())},
        **summarise(searched, gallery.threshold),
        "exact_search": {key: exact_summary.get(key) for key in EXACT_KEYS},
        "closest_unknown": [
            {"probe": str(labelled[i].path), "nearest": searched.nearest[i],
             "distance": round(float(searched.distance[i]), 4)}
            for i in closest
            if unknown[i] and math.isfinite(searched.distance[i])
        ],
    }
