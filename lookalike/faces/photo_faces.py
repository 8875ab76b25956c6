"""Every face of each photo file, embedded once and cached by content: what a gallery build and the
identification evaluation read.

A photo here is labelled with one person (its folder, or a manifest row) and, like LFW's crops, framed on
them: the face nearest the centre is taken as the labelled one (`PhotoFaces.centre`; a bystander may be
larger), unless a manifest box names another. Every face found is embedded, so a box naming any face
needs no second pass. A photo where no detector finds a face records no face: unlike the verification
evaluation no centred box stands in, because a gallery entry must be a face someone is recognised by.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.faces.cached import BATCH, face_cache
from lookalike.faces.pipeline import FaceEmbedding
from lookalike.faces.process_pool import EmbedJob, ParallelFacePipeline
from lookalike.images.cache import Entry, file_sha256
from lookalike.images.loading import ImageError, load_image
from model_zoo.face_embedders import Weights

Box = tuple[float, float, float, float]
NAMESPACE = "face_photos"  # one cache row per photo (its centre face), one more per further face
FALLBACK = "centre"  # the detector name the pipeline gives a centred box when no detector found a face


@dataclass(frozen=True)
class FoundFace:
    box: Box
    confidence: float
    detector: str
    vector: np.ndarray


@dataclass(frozen=True)
class PhotoFaces:
    """The faces found in one photo, largest first; `centre` is the one nearest the centre (None: no face)."""

    width: int
    height: int
    faces: list[FoundFace]
    centre: int | None

    def face_at(self, box: Box, min_overlap: float = 0.3) -> int | None:
        """The face whose box overlaps `box` most (intersection over union), if it overlaps at least
        `min_overlap`: how a manifest's box names a face without knowing the detector's exact box."""
        overlaps = [_iou(face.box, box) for face in self.faces]
        if not overlaps or max(overlaps) < min_overlap:
            return None
        return int(np.argmax(overlaps))


@dataclass
class EmbeddedPhotos:
    photos: list[PhotoFaces | None]  # in the order of the paths; None: unreadable (see `errors`)
    errors: dict[int, str]  # position -> why the photo could not be read
    embedded: int  # photos the cache lacked
    seconds: float  # time spent embedding them


def _iou(a: Box, b: Box) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _from_pipeline(result: FaceEmbedding, width: int, height: int) -> PhotoFaces:
    """The pipeline's faces; its centred stand-in box (it is asked for a centred photo's face) means none."""
    if len(result.detections) == 1 and result.face.detector == FALLBACK:
        return PhotoFaces(width, height, [], None)
    faces = [
        FoundFace(tuple(float(v) for v in d.box), float(d.confidence), d.detector, result.embedded[i][0])
        for i, d in enumerate(result.detections)
    ]
    return PhotoFaces(width, height, faces, result.index)


def _entries(digest: str, photo: PhotoFaces, dim: int) -> dict[str, Entry]:
    """Cache rows: `digest` holds the record and the centre face's vector, `digest#i` each other face's."""
    record = {
        "width": photo.width,
        "height": photo.height,
        "centre": photo.centre,
        "faces": [{"box": list(f.box), "confidence": f.confidence, "detector": f.detector} for f in photo.faces],
    }
    centre = photo.faces[photo.centre].vector if photo.centre is not None else np.zeros(dim, np.float32)
    rows = {digest: (centre, record)}
    rows.update({f"{digest}#{i}": (f.vector, {}) for i, f in enumerate(photo.faces) if i != photo.centre})
    return rows


def _from_cache(digest: str, entries: dict[str, Entry]) -> PhotoFaces | None:
    """The photo's faces if the cache holds all of its rows."""
    if digest not in entries:
        return None
    centre_vector, record = entries[digest]
    faces = []
    for i, face in enumerate(record["faces"]):
        key = digest if i == record["centre"] else f"{digest}#{i}"
        if key not in entries:
            return None
        vector = centre_vector if key == digest else entries[key][0]
        faces.append(FoundFace(tuple(face["box"]), face["confidence"], face["detector"], vector))
    return PhotoFaces(record["width"], record["height"], faces, record["centre"])


def embed_photos(
    paths: list[Path], model: str, weights: Weights = None, processes: int | None = None, quiet: bool = False
) -> EmbeddedPhotos:
    """Every face of each photo; photos already cached are not decoded again, unreadable ones are reported."""
    cache = face_cache(model, weights, NAMESPACE)
    errors: dict[int, str] = {}
    digests: list[str | None] = []
    for position, path in enumerate(paths):
        try:
            digests.append(file_sha256(path))
        except OSError as exc:
            digests.append(None)
            errors[position] = f"cannot be read ({exc.strerror or exc})"
    wanted = [d for d in digests if d]
    entries = cache.get_many(wanted)
    further = [f"{d}#{i}" for d in entries for i in range(len(entries[d][1]["faces"])) if i != entries[d][1]["centre"]]
    entries.update(cache.get_many(further))
    found = {d: photo for d in set(wanted) if (photo := _from_cache(d, entries)) is not None}
    todo = list({d: p for p, d in zip(paths, digests, strict=True) if d and d not in found}.items())
    unreadable: dict[str, str] = {}
    start = time.perf_counter()
    if todo:
        with ParallelFacePipeline(model, weights, processes) as pipeline:
            for first in range(0, len(todo), BATCH):
                jobs, sizes, batch = [], [], []
                for digest, path in todo[first : first + BATCH]:
                    try:
                        image = load_image(path)
                    except ImageError as exc:
                        unreadable[digest] = str(exc)
                        continue
                    jobs.append(EmbedJob(image, str(path), centred=True, every_face=True))
                    sizes.append(image.size)
                    batch.append(digest)
                fresh = {
                    digest: _from_pipeline(result, *size)
                    for digest, size, result in zip(batch, sizes, pipeline.run(jobs), strict=True)
                }
                rows: dict[str, Entry] = {}
                for digest, photo in fresh.items():
                    rows.update(_entries(digest, photo, pipeline.local.model.dim))
                cache.put_many(rows)
                found.update(fresh)
                if not quiet:
                    done = min(first + BATCH, len(todo))
                    rate = done / (time.perf_counter() - start)
                    print(f"embedded {done}/{len(todo)} photos ({rate:.1f}/s)", file=sys.stderr, flush=True)
    for position, digest in enumerate(digests):
        if digest in unreadable:
            errors[position] = unreadable[digest]
    return EmbeddedPhotos(
        photos=[found.get(d) if d else None for d in digests],
        errors=errors,
        embedded=len(todo) - len(unreadable),
        seconds=time.perf_counter() - start,
    )
