"""`cluster_faces`: a photo collection (no labels) -> a people index: every face detected, embedded (cached by
content, as a gallery build), judged sure or unsure, and grouped into people (`people_cluster`) under the
user's corrections, then written through the one index writer (lock, build beside, atomic swap).

Three ways to run over an index already at `out`, all keeping its corrections and its people's ids and names:

- `update=True`: unchanged photos keep their faces and people as they are (no person loses a face); new
  photos' faces join the existing people or form new ones; removed photos' faces go.
- without `update`: every face is clustered again from scratch, under the corrections; each new cluster takes
  the id (and name) of the person pinned in it, else of the old person it shares most faces with.
- no index there: a first clustering.

A face is "unsure", kept aside rather than forced into a person, when it is smaller than `MIN_SIDE` pixels,
its detector confidence is under `MIN_CONFIDENCE`, or its crop is blurred (`sharpness` under `MIN_SHARPNESS`);
a user moving an unsure face to a person pins it there.
"""

from __future__ import annotations

import csv
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from lookalike.faces.people_cluster import DEFAULT_K, DEFAULT_THRESHOLD, Constraints, agglomerate, edges_of
from lookalike.faces.people_index import People, PeopleManifest, face_key, write_state
from lookalike.faces.photo_faces import embed_photos
from lookalike.images.cache import file_sha256
from lookalike.images.loading import ImageError, load_image
from lookalike.vectors import index_folder
from lookalike.vectors.index_writer import IndexWriter
from lookalike.vectors.knn_graph import knn_graph
from lookalike.vectors.manifest import MANIFEST
from lookalike.vectors.neighbours import nearest
from lookalike.vectors.stores import DEFAULT_STORE, VectorStore, parse_store
from model_zoo.face_embedders import DEFAULT_FACE_MODEL, Weights, get_face_cfg

__all__ = ["MIN_CONFIDENCE", "MIN_SHARPNESS", "MIN_SIDE", "cluster_faces", "list_photos", "sharpness"]

MIN_SIDE = 32  # px, the face box's shorter side: below it the 112 px aligned crop is mostly upsampled blur
MIN_CONFIDENCE = 0.9  # MTCNN's probability: below it a find is as often a false one (LFW bystanders)
#: Variance of the Laplacian of the 64 px grey crop. LFW sets 1-2's centred faces: 1st percentile 240; blurred
#: by a Gaussian of 4 px at 64 px, 5th percentile 59: only a face blurred that much or more is flagged.
MIN_SHARPNESS = 60.0
TREES = 0  # exactly searched (no forest rebuilt on each update): clustering reads the graph, identify the named
BRUTE_FORCE_SHARE = 0.1  # an update adding fewer new faces than this share searches their neighbours exactly


def list_photos(source: str | Path) -> tuple[Path, list[Path]]:
    """(the root photo paths are relative to, the photos): every non-hidden file of a folder tree, or the paths
    of a CSV (a `path` column, or the first column; relative paths beside the CSV).

    Raises:
        FileNotFoundError: `source` does not exist.
        ValueError: no photo in it.
    """
    source = Path(source)
    if source.is_dir():
        root = source.resolve()
        photos = sorted(p for p in root.rglob("*") if p.is_file()
                        and not any(part.startswith(".") for part in p.relative_to(root).parts))
    elif source.is_file():
        root = source.resolve().parent
        with source.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row and row[0].strip()]
        column = rows[0].index("path") if rows and "path" in rows[0] else 0
        if rows and "path" in rows[0]:
            rows = rows[1:]
        photos = [Path(r[column].strip()) if Path(r[column].strip()).is_absolute() else root / r[column].strip()
                  for r in rows]
    else:
        raise FileNotFoundError(f"photos not found: {source} (a folder of photos or a CSV of paths)")
    if not photos:
        raise ValueError(f"no photos in {source}")
    return root, photos


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path.resolve())


def sharpness(image: Image.Image, box: list[float]) -> float:
    """Variance of the Laplacian of the face's grey crop at 64 px: low for a blurred face."""
    crop = image.crop(tuple(round(v) for v in box)).convert("L").resize((64, 64))
    edges = np.asarray(crop.filter(ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], 1, 128)), np.float32)
    return float(np.var(edges))


def _unsure(box: list[float], confidence: float, sharp: float) -> str | None:
    if min(box[2] - box[0], box[3] - box[1]) < MIN_SIDE:
        return f"smaller than {MIN_SIDE} px"
    if confidence < MIN_CONFIDENCE:
        return f"detector confidence under {MIN_CONFIDENCE}"
    if sharp < MIN_SHARPNESS:
        return "blurred"
    return None


def _previous(out: Path) -> tuple[PeopleManifest, dict, np.ndarray, dict[int, int]] | None:
    """The index at `out`: (manifest, state, unit vectors in row order, id -> row), or None."""
    if not index_folder.exists(out, MANIFEST):
        return None
    people = People(out)
    try:
        ids, units = people.store.vectors([row["id"] for row in people.rows])
    finally:
        people.close()
    return people.manifest, people.state, units, {int(i): r for r, i in enumerate(ids)}


def _new_faces(paths: list[Path], digests: dict[Path, str], root: Path, model: str, weights: Weights,
               processes: int | None, quiet: bool) -> tuple[list[dict], list[np.ndarray], list[dict], list[dict], int]:
    """(rows without ids, raw vectors, photos without a face, unreadable, photos embedded) of new photos."""
    embedded = embed_photos(paths, model, weights, processes, quiet)
    rows, vectors, without, unreadable = [], [], [], []
    for position, (path, photo) in enumerate(zip(paths, embedded.photos, strict=True)):
        relative = _relative(path, root)
        if photo is None:
            unreadable.append({"path": relative, "error": embedded.errors.get(position, "cannot be read")})
            continue
        if not photo.faces:
            without.append({"path": relative, "sha256": digests[path], "reason": "no face found"})
            continue
        try:
            image = load_image(path)
        except ImageError as exc:
            unreadable.append({"path": relative, "error": str(exc)})
            continue
        for number, face in enumerate(photo.faces):
            box = [round(v, 1) for v in face.box]
            sharp = sharpness(image, box)
            rows.append({"photo": relative, "sha256": digests[path], "face": number, "box": box,
                         "confidence": round(face.confidence, 4), "detector": face.detector,
                         "sharpness": round(sharp, 1), "unsure": _unsure(box, face.confidence, sharp),
                         "norm": float(np.linalg.norm(face.vector))})
            vectors.append(face.vector)
    return rows, vectors, without, unreadable, embedded.embedded


def _graph(units: np.ndarray, fresh: np.ndarray, k: int, update: bool) -> tuple[np.ndarray, np.ndarray]:
    """The clustering graph's edges over `units`; an update needs only the new rows' (`fresh`) neighbours."""
    if update and not len(fresh):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if update and len(fresh) < BRUTE_FORCE_SHARE * len(units):
        found = nearest(units, units[fresh], k + 1)[1]
        return edges_of(np.where(found == fresh[:, None], -1, found), fresh)
    return edges_of(knn_graph(units, k)[0])


def _people_ids(labels: np.ndarray, rows: list[dict], owners: dict[int, int], before: dict[int, int | None],
                next_person: int) -> tuple[list[int], int]:
    """A person id per cluster: the person pinned (or kept) in it, else the previous person it shares most
    faces with (each previous person once, largest overlap first), else a new id."""
    clusters = int(labels.max()) + 1 if len(labels) else 0
    ids: list[int | None] = [None] * clusters
    for row, person in owners.items():
        ids[labels[row]] = person
    taken = {p for p in ids if p is not None}
    overlap: dict[tuple[int, int], int] = {}
    for row, label in enumerate(labels.tolist()):
        old = before.get(row)
        if ids[label] is None and old is not None:
            overlap[(label, old)] = overlap.get((label, old), 0) + 1
    for (label, old), _ in sorted(overlap.items(), key=lambda item: -item[1]):
        if ids[label] is None and old not in taken:
            ids[label] = old
            taken.add(old)
    for label in range(clusters):
        if ids[label] is None:
            ids[label] = next_person
            next_person += 1
    return ids, next_person  # type: ignore[return-value]


def cluster_faces(
    photos: str | Path,
    out: str | Path,
    *,
    update: bool = False,
    model: str | None = None,
    weights: Weights = None,
    threshold: float | None = None,
    store: str | None = None,
    processes: int | None = None,
    quiet: bool = False,
) -> dict:
    """Group the faces of a photo collection into people, into the people index `out` (swapped in atomically).

    Args:
        photos: a folder tree of photos, or a CSV of paths (a `path` column or the first one); no labels.
        out: the people index folder. An index there keeps its corrections and people's ids and names.
        update: add new photos' faces to the people there (no person loses a face), drop removed photos';
            without it every face is clustered again, under the corrections.
        model, weights: the face model (default: DEFAULT_FACE_MODEL); an index there keeps its own.
        threshold: mean cosine at which two groups of faces merge (default: the index's, else
            `people_cluster.DEFAULT_THRESHOLD`, chosen on LFW).
        store: where the vectors go (`lookalike.vectors.stores`; default annoy, or the index's).
        processes: helper processes embedding faces (default: one per core, up to 2).
        quiet: no progress lines on stderr.

    Returns:
        The manifest written: photos, faces, people, unsure faces, photos without a face and unreadable files
        (path and why), photos embedded, an update's counts, the clustering settings and the store.

    Raises:
        IndexLockedError: another build or correction of `out` is running (the message names its pid).
        IndexWriteError: the disk refused the new index; the one at `out` is unchanged.
        FileNotFoundError: `photos` does not exist, or `update` without an index at `out`.
        ValueError: no face in any photo, or a model other than the index's.
        UnknownModelError, WeightsUnavailableError: the model is unknown or its weights are not here.

    Example:
        >>> import lookalike
        >>> report = lookalike.cluster_faces("holiday_photos/", "people_index")
        >>> report["people"], report["unsure"], report["unreadable"]
        (41, 12, [])
        >>> lookalike.cluster_faces("holiday_photos/", "people_index", update=True)["update"]["added_faces"]
        3
    """
    out = Path(out)
    with IndexWriter(out, what="people index") as writer:
        started = time.perf_counter()
        root, paths = list_photos(photos)
        previous = _previous(out)
        if update and previous is None:
            raise FileNotFoundError(f"no people index at {out} to update: run without --update first")
        manifest, state, old_units, old_row = previous if previous else (None, None, None, {})
        if manifest and model not in (None, manifest.model):
            raise ValueError(f"the people index at {out} uses {manifest.model}: remove it to change the model")
        model = manifest.model if manifest else model or DEFAULT_FACE_MODEL
        weights = manifest.weights if manifest else weights
        threshold = threshold if threshold is not None else manifest.threshold if manifest else DEFAULT_THRESHOLD
        address = store or (manifest.store["address"] if manifest else DEFAULT_STORE)
        cfg = get_face_cfg(model)

        digests: dict[Path, str] = {}
        unreadable: list[dict] = []
        for path in dict.fromkeys(paths):
            try:
                digests[path] = file_sha256(path)
            except OSError as exc:
                unreadable.append({"path": _relative(path, root), "error": f"cannot be read ({exc.strerror or exc})"})
        wanted = {(_relative(p, root), d) for p, d in digests.items()}
        kept = [r for r in (state["faces"] if state else []) if (r["photo"], r["sha256"]) in wanted]
        known = {(r["photo"], r["sha256"]) for r in kept}
        without = [w for w in (manifest.photos_without_face if manifest else []) if (w["path"], w["sha256"]) in wanted]
        known |= {(w["path"], w["sha256"]) for w in without}
        todo = [p for p, d in digests.items() if (_relative(p, root), d) not in known]
        fresh_rows, fresh_vectors, fresh_without, fresh_unreadable, embedded = _new_faces(
            todo, digests, root, model, weights, processes, quiet)
        without += fresh_without
        unreadable += fresh_unreadable

        next_face = state["next_face"] if state else 0
        for row in fresh_rows:
            row["id"], row["person"] = next_face, None
            next_face += 1
        rows = kept + fresh_rows
        if not rows:
            raise ValueError(f"no face in any photo of {photos}: {len(without)} without a face, "
                             f"{len(unreadable)} unreadable")
        raw = np.asarray(fresh_vectors, np.float32).reshape(-1, cfg.dim)
        units = np.concatenate([
            old_units[[old_row[r["id"]] for r in kept]] if kept else np.zeros((0, cfg.dim), np.float32),
            raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12),
        ]).astype(np.float32)

        pins = state["pins"] if state else {}
        refused = state["not"] if state else {}
        included = [i for i, r in enumerate(rows) if r["unsure"] is None or face_key(r) in pins]
        position = {row: i for i, row in enumerate(included)}
        constraints = Constraints(
            owner={position[i]: pins[face_key(rows[i])] for i in included if face_key(rows[i]) in pins},
            forbidden={position[i]: set(refused[face_key(rows[i])]) for i in included if face_key(rows[i]) in refused},
            frozen={position[i]: rows[i]["person"] for i in included if update and i < len(kept)
                    and rows[i]["person"] is not None},
        )
        fresh = np.asarray([position[i] for i in included if i >= len(kept)], np.int64)
        heads, tails = _graph(units[included], fresh, DEFAULT_K, update)
        labels = agglomerate(units[included], heads, tails, threshold, constraints)
        before = {position[i]: rows[i]["person"] for i in included if i < len(kept)}
        ids, next_person = _people_ids(labels, rows, {**constraints.frozen, **constraints.owner}, before,
                                       state["next_person"] if state else 0)
        for i, row in enumerate(rows):
            row["person"] = ids[labels[position[i]]] if i in position else None

        names = {p["id"]: p["name"] for p in (state["people"] if state else [])}
        used = sorted({r["person"] for r in rows if r["person"] is not None} | set(pins.values()))
        new_state = {"faces": rows, "people": [{"id": p, "name": names.get(p)} for p in used],
                     "pins": pins, "not": refused, "corrections": state["corrections"] if state else [],
                     "next_person": next_person, "next_face": next_face}
        before_people = {r["person"] for r in (state["faces"] if state else []) if r["person"] is not None}
        report = {
            "photos": len(paths), "faces": len(rows),
            "people": len({r["person"] for r in rows if r["person"] is not None}),
            "unsure": sum(r["person"] is None for r in rows),
            "photos_without_face": without, "unreadable": unreadable, "photos_embedded": embedded,
            "update": None if state is None else {
                "kept_faces": len(kept), "added_faces": len(fresh_rows),
                "removed_faces": len(state["faces"]) - len(kept),
                "people_kept": len(before_people & set(used)), "people_new": len(set(used) - before_people),
                "reclustered": not update},
        }

        def fill(folder: Path, new_store: VectorStore) -> PeopleManifest:
            new_store.add([r["id"] for r in rows], units, ["face"] * len(rows))
            entry = new_store.persist()
            new_store.close()
            write_state(folder, new_state)
            return PeopleManifest(
                model=model, weights=weights and str(Path(weights).resolve()), metric=cfg.metric, dim=cfg.dim,
                photos_root=str(root), source=str(photos), threshold=threshold, linkage="average", k=DEFAULT_K,
                **report, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                store={**entry, "address": address}, build_seconds=round(time.perf_counter() - started, 2))

        return writer.write(parse_store(address), cfg.dim, TREES, fill).to_dict()

