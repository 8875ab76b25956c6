"""Build a face gallery index from named photos: read them (`labelled`), embed every face (cached by content),
label one face per photo, and write the rows, the vectors and the manifest through the shared index writer
(`lookalike.vectors.index_writer`: one writer at a time, built beside, swapped in atomically).

Which face of a photo is the person's: `labelled.labelled_face`. A manifest may list one photo several times
with different people and boxes: every face it names is then one entry. The photo's other faces are counted
in the report but not indexed: a face without a name cannot be an answer, and labelling a bystander with the
photo's person would name strangers.
A photo without a usable face (none found, none at its box, or unreadable) is listed in the report, as is
every person left without any face, never dropped silently.

`update=True` keeps the previous index's faces of unchanged photos (same path, content, person and box)
without detecting again, embeds new or changed photos, and leaves removed ones out.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lookalike.faces import gallery_index
from lookalike.faces.gallery_index import FaceGallery
from lookalike.faces.gallery_manifest import GalleryManifest
from lookalike.faces.labelled import LabelledPhoto, labelled_face, read_labelled
from lookalike.faces.photo_faces import Box, EmbeddedPhotos, PhotoFaces, embed_photos
from lookalike.images.cache import file_sha256
from lookalike.vectors.index_writer import IndexWriter
from lookalike.vectors.stores import DEFAULT_STORE, VectorStore, parse_store
from model_zoo.face_embedders import DEFAULT_FACE_MODEL, Weights, get_face_cfg

__all__ = ["LabelledPhoto", "build_gallery", "labelled_face", "read_labelled"]

#: Annoy trees (the search effort is measured at build time, as for the product index).
DEFAULT_TREES = 32
FACE_CHOICE = "the manifest's box, else the face nearest the photo's centre"

Key = tuple[str, str, str, Box | None]  # (path, sha256, person, box): what makes a photo's label unchanged


@dataclass
class Previous:
    """The index an update starts from: its faces and its photos without one, by unchanged label."""

    manifest: GalleryManifest
    rows: dict[Key, dict]
    vectors: dict[int, np.ndarray]  # id -> raw vector
    without_face: dict[Key, dict]

    @classmethod
    def read(cls, out: Path) -> Previous:
        gallery = FaceGallery.load(out)
        try:
            ids, units = gallery.store.vectors()
        finally:
            gallery.close()
        norms = {row["id"]: row["norm"] for row in gallery.rows}
        vectors = {int(i): unit * norms[int(i)] for i, unit in zip(ids, units, strict=True)}
        rows = {_key(row["path"], row["sha256"], row["person"], row["given_box"]): row for row in gallery.rows}
        without = {_key(r["path"], r["sha256"], r["person"], r["given_box"]): r
                   for r in gallery.manifest.photos_without_face if r.get("sha256")}
        return cls(gallery.manifest, rows, vectors, without)


def _key(path: str | Path, digest: str, person: str, box: Box | list[float] | None) -> Key:
    return str(path), digest, person, None if box is None else tuple(float(v) for v in box)


def _row(item: LabelledPhoto, digest: str, photo: PhotoFaces, index: int) -> dict:
    face = photo.faces[index]
    return {
        "person": item.person,
        "path": str(item.path),
        "sha256": digest,
        "box": [round(v, 1) for v in face.box],
        "face": index,
        "faces_in_photo": len(photo.faces),
        "confidence": round(face.confidence, 4),
        "detector": face.detector,
        "given_box": None if item.box is None else list(item.box),
    }


def _digests(photos: list[LabelledPhoto]) -> tuple[dict[Path, str | None], list[dict]]:
    """Each photo's content hash (None: the file cannot be read, listed in the second value)."""
    digests: dict[Path, str | None] = {}
    unreadable: list[dict] = []
    for item in photos:
        if item.path not in digests:
            try:
                digests[item.path] = file_sha256(item.path)
            except OSError as exc:
                digests[item.path] = None
                unreadable.append({"path": str(item.path), "person": item.person,
                                   "error": f"cannot be read ({exc.strerror or exc})"})
    return digests, unreadable


def _entries(
    readable: list[LabelledPhoto], keys: dict[LabelledPhoto, Key], previous: Previous | None,
    found: dict[Path, PhotoFaces | None],
) -> tuple[list[dict], list[np.ndarray], list[dict], int]:
    """(rows, raw vectors, photos without a usable face, faces kept from `previous`): unchanged photos as the
    previous index had them, the others from their embedded faces (`found`; None: unreadable, listed already)."""
    rows: list[dict] = []
    vectors: list[np.ndarray] = []
    without_face: list[dict] = []
    next_id = max((row["id"] for row in previous.rows.values()), default=-1) + 1 if previous else 0
    kept_faces = 0
    for item in readable:
        key = keys[item]
        if previous and key in previous.rows:
            row = previous.rows[key]
            rows.append(row)
            vectors.append(previous.vectors[row["id"]])
            kept_faces += 1
            continue
        if previous and key in previous.without_face:
            without_face.append(previous.without_face[key])
            continue
        photo = found[item.path]
        if photo is None:
            continue
        index, reason = labelled_face(photo, item.box)
        if index is None:
            without_face.append({"path": str(item.path), "person": item.person, "sha256": key[1],
                                 "given_box": None if item.box is None else list(item.box), "reason": reason})
            continue
        rows.append({"id": next_id, **_row(item, key[1], photo, index)})
        vectors.append(photo.faces[index].vector)
        next_id += 1
    return rows, vectors, without_face, kept_faces


def build_gallery(
    gallery: str | Path,
    out: str | Path,
    *,
    model: str | None = None,
    weights: Weights = None,
    store: str | None = None,
    trees: int | None = None,
    update: bool = False,
    processes: int | None = None,
    quiet: bool = False,
) -> dict:
    """Build the face gallery index of `gallery` into `out`, replacing any index there atomically.

    Args:
        gallery: a folder of `<person>/<photo>` files, or a CSV manifest `path,person[,x1,y1,x2,y2]`.
        out: the index folder. A build that fails or is interrupted leaves the index there unchanged.
        model, weights: the face model (default: DEFAULT_FACE_MODEL); an update keeps the previous one.
        store: where the vectors go (`lookalike.vectors.stores`): "annoy" (default), "milvus",
            "milvus:///path/file.db", "milvus://host:19530"; an update keeps the previous one unless given.
        trees: Annoy trees (default: DEFAULT_TREES; the search effort is measured at build time).
        update: start from the index at `out`: unchanged photos keep their faces, new ones are embedded,
            removed ones left out.
        processes: helper processes embedding faces (default: one per core, up to 2).
        quiet: no progress lines on stderr.

    Returns:
        The manifest written (`GalleryManifest.to_dict()`, as manifest.json holds it): faces and people
        indexed, the photos without a usable face and why, the people left without any face, unreadable
        files, photos with several faces, build time and rate, the store, and for an update how many faces
        were kept, added and removed.

    Raises:
        IndexLockedError: another build or update of `out` is running (the message names its pid).
        IndexWriteError: the disk refused the new gallery (full, read-only); the one at `out` is unchanged.
        FileNotFoundError: `gallery` does not exist, or `update` without an index at `out`.
        ValueError: no usable face in any photo, a malformed manifest, an unknown store, or an update asked
            to change the model.
        UnknownModelError, WeightsUnavailableError: the model is unknown or its weights are not here.

    Example:
        >>> import lookalike
        >>> report = lookalike.build_gallery("people/", "face_index")
        >>> report["faces"], report["people_without_face"]
        (1457, [])
        >>> lookalike.build_gallery("people/", "face_index", update=True)["update"]
        {'kept': 1457, 'added': 2, 'removed': 1}
    """
    out = Path(out)
    with IndexWriter(out, what="gallery") as writer:  # from reading the previous gallery to the swap
        started = time.perf_counter()
        photos = read_labelled(gallery)
        previous = Previous.read(out) if update else None
        if previous:
            if model not in (None, previous.manifest.model):
                raise ValueError(f"the gallery at {out} uses {previous.manifest.model}: rebuild it without --update "
                                 f"to change the model")
            model, weights = previous.manifest.model, previous.manifest.weights
        model = model or DEFAULT_FACE_MODEL
        address = store or (previous.manifest.store["address"] if previous else DEFAULT_STORE)
        spec = parse_store(address)
        cfg = get_face_cfg(model)

        digests, unreadable = _digests(photos)
        readable = [item for item in photos if digests[item.path]]
        keys = {item: _key(item.path, digests[item.path], item.person, item.box) for item in readable}
        known = {**previous.rows, **previous.without_face} if previous else {}
        todo = {item.path: item.person for item in readable if keys[item] not in known}
        paths = list(todo)
        embedded = embed_photos(paths, model, weights, processes, quiet)
        found = dict(zip(paths, embedded.photos, strict=True))
        unreadable += [{"path": str(paths[i]), "person": todo[paths[i]], "error": error}
                       for i, error in embedded.errors.items()]

        rows, vectors, without_face, kept_faces = _entries(readable, keys, previous, found)
        if not rows:
            raise ValueError(f"no usable face in any photo of {gallery}: {len(without_face)} without a face, "
                             f"{len(unreadable)} unreadable")
        report = _report(photos, rows, without_face, unreadable, embedded)
        if previous:
            report["update"] = {"kept": kept_faces, "added": len(rows) - kept_faces,
                                "removed": len(previous.rows) - kept_faces}

        def fill(folder: Path, new_store: VectorStore) -> GalleryManifest:
            entry = gallery_index.write_faces(folder, rows, np.stack(vectors), new_store)
            return GalleryManifest(
                model=model, weights=None if weights is None else str(Path(weights).resolve()), metric=cfg.metric,
                dim=cfg.dim, threshold_at_build=cfg.threshold, gallery=str(gallery), face_choice=FACE_CHOICE,
                **report, faces=len(rows), store={**entry, "address": address},
                build_seconds=round(time.perf_counter() - started, 2),
            )

        return writer.write(spec, cfg.dim, trees or DEFAULT_TREES, fill).to_dict()


def _report(
    photos: list[LabelledPhoto], rows: list[dict], without_face: list[dict], unreadable: list[dict],
    embedded: EmbeddedPhotos,
) -> dict:
    """The build report's fields of the manifest: who and what could not be indexed, and the embedding rate."""
    people = Counter(row["person"] for row in rows)
    labelled = Counter(row["path"] for row in rows)  # a manifest may name several faces of one photo
    faces_in = {row["path"]: row["faces_in_photo"] for row in rows}
    return {
        "photos": len(photos),
        "people": len(people),
        "people_without_face": sorted({item.person for item in photos} - set(people)),
        "photos_without_face": without_face,
        "unreadable": unreadable,
        "photos_with_several_faces": sum(count > 1 for count in faces_in.values()),
        "faces_not_labelled": sum(count - labelled[path] for path, count in faces_in.items()),
        "photos_embedded": embedded.embedded,
        "embed_photos_per_second": round(embedded.embedded / embedded.seconds, 2) if embedded.embedded else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
