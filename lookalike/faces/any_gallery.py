"""Open whichever kind of gallery a folder holds: a face gallery (`build-faces`) or a people index
(`cluster-faces`, whose named people are its gallery), so `identify`, the app and `LiveGallery` take either."""

from __future__ import annotations

from pathlib import Path

from lookalike.faces.gallery import Gallery
from lookalike.faces.gallery_index import FaceGallery
from lookalike.faces.gallery_manifest import MANIFEST, GalleryManifest
from lookalike.faces.people_index import People, PeopleManifest, is_people_index
from lookalike.faces.process_pool import ParallelFacePipeline
from lookalike.vectors import index_folder

__all__ = ["gallery_model", "open_gallery"]


def open_gallery(index_dir: str | Path, pipeline: ParallelFacePipeline | None = None) -> Gallery:
    """The gallery at `index_dir`: a `People` index's named people, else a `FaceGallery`.

    Raises:
        FileNotFoundError: nothing there.
        GalleryError, PeopleError: the folder is damaged or of another kind.
    """
    if is_people_index(index_dir):
        return People(index_dir, pipeline)
    return FaceGallery.load(index_dir, pipeline)


def gallery_model(index_dir: str | Path) -> str:
    """The face model of the gallery or people index at `index_dir`, read from its manifest alone.

    Raises:
        FileNotFoundError: nothing there.
        GalleryError, PeopleError: the manifest is damaged or of another kind.
    """
    folder = index_folder.locate(Path(index_dir), MANIFEST)
    if is_people_index(index_dir):
        return PeopleManifest.read(folder).model
    return GalleryManifest.read(folder).model
