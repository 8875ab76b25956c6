"""`LiveGallery`: a face gallery swapped by a build is served without a restart and the old one closed; a
gallery written here by hand (no face model needed), through the writer `build_gallery` uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookalike.faces import gallery_index
from lookalike.faces.gallery_manifest import GalleryManifest
from lookalike.faces.live import LiveGallery
from lookalike.vectors.index_writer import IndexWriter
from lookalike.vectors.stores import VectorStore, parse_store
from model_zoo.face_embedders import get_face_cfg
from model_zoo.registry import DEFAULT_FACE_MODEL


def _write_gallery(out: Path, people: list[str]) -> None:
    cfg = get_face_cfg(DEFAULT_FACE_MODEL)
    rows = [{"id": i, "person": person, "path": f"{person}.jpg", "box": [0, 0, 10, 10]}
            for i, person in enumerate(people)]
    vectors = np.random.default_rng(len(people)).normal(size=(len(people), cfg.dim)).astype(np.float32)

    def fill(folder: Path, store: VectorStore) -> GalleryManifest:
        entry = gallery_index.write_faces(folder, rows, vectors, store)
        return GalleryManifest(model=DEFAULT_FACE_MODEL, metric=cfg.metric, dim=cfg.dim, faces=len(rows),
                               store={**entry, "address": "annoy"})

    with IndexWriter(out, what="gallery") as writer:
        writer.write(parse_store("annoy"), cfg.dim, 2, fill)


def test_an_updated_gallery_is_served_and_the_old_one_closed(tmp_path: Path) -> None:
    out = tmp_path / "faces"
    live = LiveGallery(out, interval=0)
    assert "no face gallery" in live.problem
    _write_gallery(out, ["ada", "grace"])
    assert live.refresh()
    with live.gallery() as first:
        assert first.people == {"ada", "grace"}
        _write_gallery(out, ["ada", "grace", "linus"])
        assert live.refresh()
        assert first.store._forests  # still open: a request is using it
    assert not first.store._forests  # closed after its last request
    with live.gallery() as second:
        assert second.people == {"ada", "grace", "linus"} and len(second) == 3
    live.close()
    assert not second.store._forests
