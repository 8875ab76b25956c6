"""A people index on disk (`lookalike cluster-faces`): every face of a photo collection, grouped into people,
with the corrections the user made; `People` loads it, lists it and applies corrections.

    PEOPLE/
      manifest.json    `PeopleManifest`: format, face model, clustering settings, photos root, the build report
                       (unreadable files, photos without a face), counts; written last
      people.json      faces (id, photo relative to the root, sha256, face number, box, quality, person or
                       null), people (id, name), and the corrections as constraints: faces pinned to a person
                       (`pins`), faces that are not a person (`not`), and their log
      annoy/ | milvus/ the vector store: every face's unit vector by face id

A correction changes people.json in place, atomically, under the index's writer lock, and gives the folder a
new generation (as `train-head --install` does), so a server follows it. Faces are keyed in the constraints
by content (`<sha256>#<face number>`), so they survive `--update`, a re-clustering and a renamed photo.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lookalike.faces.gallery import Gallery, GalleryFace, open_set_threshold
from lookalike.faces.process_pool import ParallelFacePipeline
from lookalike.vectors import index_folder
from lookalike.vectors.manifest import MANIFEST, Manifest
from lookalike.vectors.neighbours import nearest
from lookalike.vectors.stores import StoreError, open_store

__all__ = ["FORMAT", "People", "PeopleError", "PeopleManifest", "face_key", "is_people_index"]

FORMAT_NAME = "lookalike-people"
FORMAT = f"{FORMAT_NAME}/1"
STATE = "people.json"


class PeopleError(ValueError):
    """A folder that is not a readable people index, or a correction that cannot apply; says what is wrong."""


@dataclass(kw_only=True)
class PeopleManifest(Manifest):
    FORMAT_NAME = FORMAT_NAME
    FORMAT_VERSION = 1
    READABLE_VERSIONS = (1,)
    KIND = "people index"

    model: str
    weights: str | None = None
    metric: str
    dim: int
    photos_root: str  # the folder (or a CSV's folder) photo paths are relative to
    source: str = ""  # the PHOTOS argument: a folder or a CSV of paths
    threshold: float
    linkage: str
    k: int
    photos: int = 0
    faces: int = 0
    people: int = 0
    unsure: int = 0
    photos_without_face: list[dict] = field(default_factory=list)  # path, sha256, reason
    unreadable: list[dict] = field(default_factory=list)  # path, error
    photos_embedded: int = 0
    update: dict | None = None  # kept / added / removed faces, people kept and new
    created: str = ""
    store: dict
    build_seconds: float | None = None

    @classmethod
    def error(cls, folder: Path | str, problem: str) -> PeopleError:
        return PeopleError(f"{problem}: rebuild it (lookalike cluster-faces PHOTOS --out {folder})")


def face_key(row: dict) -> str:
    """How the constraints name a face: by its photo's content and its number in the photo."""
    return f"{row['sha256']}#{row['face']}"


def is_people_index(folder: str | Path) -> bool:
    """Whether `folder` holds a people index (rather than a face gallery)."""
    try:
        raw = json.loads((index_folder.locate(Path(folder), MANIFEST) / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and str(raw.get("format", "")).startswith(FORMAT_NAME + "/")


def read_state(folder: Path) -> dict:
    try:
        return json.loads((folder / STATE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PeopleError(f"people index at {folder}: cannot read {STATE} ({exc})") from None


def write_state(folder: Path, state: dict) -> None:
    """people.json replaced atomically and flushed: a reader sees the old file or the new one."""
    tmp = folder / f".{STATE}.writing"
    with tmp.open("w") as handle:
        json.dump(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / STATE)


class People(Gallery):
    """A people index loaded: its faces grouped into people, listed, corrected, and searched as a gallery of
    the named people (so `identify` and the app's Find a person tab answer with their names).

    Args:
        index_dir: the people index folder (`lookalike.cluster_faces` / `lookalike cluster-faces`).
        pipeline: the face pipeline `identify` embeds with (default: the model's shared one).

    Returns (`to_dict`): {"people": [{"id", "name", "faces": [{"photo", "box", "face"}]}], "unsure": [...]}.
    Corrections (`name`, `merge`, `move`, `split`, `not_person`) are written at once and kept as constraints
    that every later `cluster_faces` (an update or a re-clustering) obeys.

    Raises:
        FileNotFoundError: no people index at `index_dir`.
        PeopleError: a damaged index, or a correction naming a person or face it does not hold.
        IndexLockedError: a correction while a build of the index runs.

    Example:
        >>> people = lookalike.People("people_index")
        >>> biggest = people.to_dict()["people"][0]
        >>> people.name(biggest["id"], "Ada")
        >>> people.identify("new.jpg").faces[0].decision
        'Ada'
    """

    def __init__(self, index_dir: str | Path, pipeline: ParallelFacePipeline | None = None) -> None:
        self.index_dir = Path(index_dir)
        try:
            self.folder = index_folder.locate(self.index_dir, MANIFEST)
        except FileNotFoundError:
            raise FileNotFoundError(f"no people index at {index_dir} (make one: lookalike cluster-faces)") from None
        self.manifest = PeopleManifest.read(self.folder)
        super().__init__(self.manifest.model, self.manifest.metric, open_set_threshold(self.manifest.model),
                         self.manifest.weights, pipeline)
        self.state = read_state(self.folder)
        self.rows: list[dict] = self.state["faces"]
        try:
            self.store = open_store(self.folder, self.manifest.store)
        except StoreError as exc:
            raise PeopleError(f"people index at {self.folder}: its vectors cannot be opened ({exc})") from None
        if self.store.count() != len(self.rows):
            self.store.close()
            raise PeopleError(f"people index at {self.folder}: {STATE} lists {len(self.rows)} faces, "
                              f"the store {self.store.count()}")
        self._named: tuple[np.ndarray, np.ndarray, list[GalleryFace]] | None = None

    # --- reading -------------------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return Path(self.manifest.photos_root)

    def names(self) -> dict[int, str | None]:
        return {p["id"]: p["name"] for p in self.state["people"]}

    def faces_of(self, person: int) -> list[dict]:
        return [row for row in self.rows if row["person"] == person]

    def photo_path(self, row: dict) -> Path:
        """The photo file of a face row (photo paths are relative to the photos' root)."""
        return self.root / row["photo"]

    def to_dict(self) -> dict:
        """{"people": [{"id", "name", "faces": [{"photo", "box", "face"}]}], "unsure": [...]}: people
        largest first (then by id), faces by photo."""
        def face(row: dict) -> dict:
            return {"photo": row["photo"], "box": row["box"], "face": row["face"]}

        members: dict[int, list[dict]] = {}
        unsure = []
        for row in sorted(self.rows, key=lambda r: (r["photo"], r["face"])):
            if row["person"] is None:
                unsure.append(face(row))
            else:
                members.setdefault(row["person"], []).append(face(row))
        names = self.names()
        people = [{"id": pid, "name": names.get(pid), "faces": faces}
                  for pid, faces in sorted(members.items(), key=lambda item: (-len(item[1]), item[0]))]
        return {"people": people, "unsure": unsure}

    # --- the gallery of named people --------------------------------------------------------------------

    def __len__(self) -> int:
        """Named faces: what `identify` searches."""
        return len(self._named_faces()[2])

    @property
    def people(self) -> set[str]:
        """The names of the named people (a gallery's people)."""
        return {face.person for face in self._named_faces()[2]}

    def _named_faces(self) -> tuple[np.ndarray, np.ndarray, list[GalleryFace]]:
        if self._named is None:
            names = self.names()
            rows = [r for r in self.rows if r["person"] is not None and names.get(r["person"])]
            ids = np.asarray([r["id"] for r in rows], np.int64)
            units = self.store.vectors(ids)[1] if len(rows) else np.zeros((0, self.manifest.dim), np.float32)
            faces = [GalleryFace(names[r["person"]], str(self.photo_path(r)), tuple(r["box"]), r["norm"])
                     for r in rows]
            self._named = (ids, units, faces)
        return self._named

    def _nearest(self, unit: np.ndarray, count: int, exact: bool) -> tuple[list[GalleryFace], np.ndarray]:
        """Exact search over the named faces (a few of the collection; the unnamed are no answer)."""
        _, units, faces = self._named_faces()
        cosines, rows = nearest(units, unit[None, :], count)
        return [faces[r] for r in rows[0]], cosines[0]

    def close(self) -> None:
        self.store.close()

    # --- corrections ----------------------------------------------------------------------------------------

    def find_face(self, photo: str, face: int) -> dict:
        """The face row of `photo` (as listed: relative to the photos' root) numbered `face`."""
        for row in self.rows:
            if row["photo"] == photo and row["face"] == face:
                return row
        raise PeopleError(f"no face {face} of {photo} in the people index at {self.index_dir}")

    def _person(self, person: int) -> dict:
        for entry in self.state["people"]:
            if entry["id"] == person:
                return entry
        raise PeopleError(f"no person {person} in the people index at {self.index_dir}")

    def _pin(self, rows: list[dict], person: int) -> None:
        for row in rows:
            row["person"] = person
            self.state["pins"][face_key(row)] = person

    def _new_person(self, name: str | None = None) -> int:
        pid = self.state["next_person"]
        self.state["next_person"] += 1
        self.state["people"].append({"id": pid, "name": name})
        return pid

    def _commit(self, what: dict) -> None:
        """Write people.json with the correction logged and a new generation; the caller holds the writer's
        lock and re-read the state under it (`_reload`), so no other writer's change is lost."""
        used = {row["person"] for row in self.rows}
        self.state["people"] = [p for p in self.state["people"] if p["id"] in used]
        self.state["corrections"].append({**what, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        write_state(self.folder, self.state)
        index_folder.bump_generation(self.folder)
        self._named = None

    def name(self, person: int, name: str | None) -> None:
        """Name a person (None: unname); its faces are pinned to it, so a re-clustering keeps them together."""
        with index_folder.write_lock(self.index_dir):
            self._reload()
            entry = self._person(person)
            entry["name"] = (name or "").strip() or None
            self._pin(self.faces_of(person), person)
            self._commit({"name": person, "to": entry["name"]})

    def merge(self, person: int, into: int) -> None:
        """Merge `person` into `into` (which keeps its id, and its name if it has one)."""
        if person == into:
            raise PeopleError("a person cannot be merged with itself")
        with index_folder.write_lock(self.index_dir):
            self._reload()
            gone, kept = self._person(person), self._person(into)
            kept["name"] = kept["name"] or gone["name"]
            self._pin(self.faces_of(person) + self.faces_of(into), into)
            for key, people in self.state["not"].items():
                self.state["not"][key] = sorted({into if p == person else p for p in people})
            self._commit({"merge": person, "into": into})

    def move(self, photo: str, face: int, to: int | None) -> int:
        """Move one face to person `to` (None: a new person of its own); returns the person it is now in."""
        with index_folder.write_lock(self.index_dir):
            self._reload()
            row = self.find_face(photo, face)
            source = row["person"]
            target = self._new_person() if to is None else self._person(to)["id"]
            if source is not None and source != target:
                self._pin([r for r in self.faces_of(source) if r is not row], source)
            self._pin([row], target)
            refused = self.state["not"].get(face_key(row), [])
            if target in refused:  # the user's latest word wins
                refused.remove(target)
            self._commit({"move": [photo, face], "from": source, "to": target})
            return target

    def split(self, person: int, faces: list[tuple[str, int]]) -> int:
        """Split the given faces of `person` off into a new person; returns its id."""
        with index_folder.write_lock(self.index_dir):
            self._reload()
            self._person(person)
            rows = [self.find_face(photo, number) for photo, number in faces]
            if not rows or any(row["person"] != person for row in rows):
                raise PeopleError(f"split needs faces of person {person}")
            if len(rows) == len(self.faces_of(person)):
                raise PeopleError(f"split leaves person {person} without a face: name the faces to take out")
            new = self._new_person()
            self._pin([r for r in self.faces_of(person) if r not in rows], person)
            self._pin(rows, new)
            self._commit({"split": person, "faces": [list(f) for f in faces], "new": new})
            return new

    def not_person(self, photo: str, face: int, person: int) -> int:
        """"Not this person": the face leaves `person` (for a new person of its own) and never joins it again;
        returns the person it is now in."""
        with index_folder.write_lock(self.index_dir):
            self._reload()
            self._person(person)
            row = self.find_face(photo, face)
            key = face_key(row)
            self.state["not"][key] = sorted(set(self.state["not"].get(key, [])) | {person})
            self._pin([r for r in self.faces_of(person) if r is not row], person)
            if self.state["pins"].get(key) == person:
                del self.state["pins"][key]
            if row["person"] == person:
                row["person"] = self._new_person()
            self._commit({"not": [photo, face], "person": person})
            return row["person"]

    def _reload(self) -> None:
        """The state as on disk now (another process may have corrected it since this one loaded)."""
        self.state = read_state(self.folder)
        self.rows = self.state["faces"]
