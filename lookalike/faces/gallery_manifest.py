"""A face gallery's manifest.json, typed (`GalleryManifest`): the face model, the vector store's entry and the
build report, written last by `build_gallery` (a folder without it is not a finished gallery).

Galleries written before the manifest was typed read unchanged and write back byte for byte
(`lookalike.vectors.manifest.Manifest`); a file of another kind or version fails with `GalleryError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lookalike.vectors.manifest import MANIFEST, Manifest

__all__ = ["FORMAT", "MANIFEST", "GalleryError", "GalleryManifest"]

FORMAT_NAME = "lookalike-face-gallery"
FORMAT_VERSION = 1
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"


class GalleryError(ValueError):
    """A folder that is not a readable face gallery index; the message says what is wrong."""


@dataclass(kw_only=True)
class GalleryManifest(Manifest):
    """manifest.json of a face gallery. Fields in the order the file lists them; the build report's fields
    have defaults, so a gallery written by hand (a benchmark's, a test's) needs only the model and the store."""

    FORMAT_NAME = FORMAT_NAME
    FORMAT_VERSION = FORMAT_VERSION
    READABLE_VERSIONS = (1,)
    KIND = "face gallery"

    model: str
    weights: str | None = None  # the face model's weights file, resolved; None: the model's own
    metric: str
    dim: int
    threshold_at_build: float | None = None  # the model's 1:1 threshold then (a later one reads its own)
    gallery: str = ""  # the labelled photos' folder or CSV manifest
    face_choice: str = ""  # how the face carrying a photo's label was chosen
    photos: int = 0
    people: int = 0
    people_without_face: list[str] = field(default_factory=list)
    photos_without_face: list[dict] = field(default_factory=list)  # path, person, sha256, given_box, reason
    unreadable: list[dict] = field(default_factory=list)  # path, person, error
    photos_with_several_faces: int = 0
    faces_not_labelled: int = 0
    photos_embedded: int = 0
    embed_photos_per_second: float | None = None
    created: str = ""
    update: dict | None = None  # an update's kept / added / removed face counts
    faces: int
    store: dict  # the store's entry (`lookalike.vectors.stores.open_store`), with the `address` built from
    build_seconds: float | None = None

    @classmethod
    def error(cls, folder: Path | str, problem: str) -> GalleryError:
        return GalleryError(f"{problem}: rebuild it (lookalike build-faces PHOTOS --out {folder})")
