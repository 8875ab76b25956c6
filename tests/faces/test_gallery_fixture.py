"""A face gallery written by the code before its manifest was typed (`fixtures/gallery_v1`: four people, one
photo each, built then updated, with a photo without a face and an unreadable file in its report; the
photos were temporary copies, so their paths no longer exist) still loads, answers, rewrites its manifest
byte for byte, and is updated from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lookalike.faces.gallery_build import build_gallery
from lookalike.faces.gallery_index import FaceGallery
from lookalike.faces.gallery_manifest import MANIFEST, GalleryManifest

WRITTEN_BEFORE = Path(__file__).parent / "fixtures" / "gallery_v1"
PEOPLE = {"Colin_Powell", "Hugo_Chavez", "Tony_Blair", "Jacques_Chirac"}


@pytest.fixture
def index(tmp_path: Path) -> Path:
    shutil.copytree(WRITTEN_BEFORE, tmp_path / "index")
    return tmp_path / "index"


def test_its_manifest_reads_typed_and_writes_back_byte_for_byte(index: Path, tmp_path: Path) -> None:
    manifest = GalleryManifest.read(index)
    assert (manifest.format, manifest.model, manifest.metric, manifest.dim) == (
        "lookalike-face-gallery/1", "arcface_mobilefacenet", "cosine", 512)
    assert manifest.weights is None and manifest.faces == 4 and manifest.people == 4
    assert manifest.update == {"kept": 3, "added": 1, "removed": 0} and manifest.people_without_face == ["Nobody"]
    assert [Path(r["path"]).name for r in manifest.photos_without_face] == ["gradient.jpg"]
    assert [Path(r["path"]).name for r in manifest.unreadable] == ["notes.txt"]
    assert manifest.store["dtype"] == "float16" and manifest.extra == {}
    (tmp_path / "again").mkdir()
    manifest.write(tmp_path / "again")
    assert (tmp_path / "again" / MANIFEST).read_bytes() == (WRITTEN_BEFORE / MANIFEST).read_bytes()


def test_it_loads_and_names_each_stored_face(index: Path) -> None:
    gallery = FaceGallery.load(index)
    try:
        assert gallery.people == PEOPLE and len(gallery) == 4 and gallery.manifest.faces == 4
        ids, units = gallery.store.vectors()
        norms = {row["id"]: row["norm"] for row in gallery.rows}
        person = {row["id"]: row["person"] for row in gallery.rows}
        for face_id, unit in zip(ids, units, strict=True):
            for exact in (False, True):
                match = gallery.matches(unit * norms[int(face_id)], top_k=2, exact=exact)[0]
                assert match.person == person[int(face_id)] and match.distance < 1e-2
    finally:
        gallery.close()


def test_it_is_updated_from(index: Path, data_root: Path, tmp_path: Path) -> None:
    """An update reads the old gallery as its previous index: its photos are gone, so all four faces leave."""
    source = tmp_path / "photos" / "Colin_Powell"
    source.mkdir(parents=True)
    for photo in sorted((data_root / "faces" / "Colin_Powell").glob("*.jpg"))[:2]:
        shutil.copy(photo, source)
    report = build_gallery(source.parent, index, update=True, processes=1, quiet=True)
    assert report["update"] == {"kept": 0, "added": 2, "removed": 4} and report["people"] == 1
    assert json.loads((index / MANIFEST).read_text())["faces"] == 2
    gallery = FaceGallery.load(index)
    try:
        assert gallery.people == {"Colin_Powell"} and gallery.manifest.model == "arcface_mobilefacenet"
        assert gallery.manifest.store["address"] == "annoy?dtype=float16"  # an update keeps its store
    finally:
        gallery.close()
