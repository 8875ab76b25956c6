"""Face identification (1:N) on real LFW photos: a tiny gallery built, identified against, updated, evaluated."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lookalike
from lookalike.cli.main import main
from lookalike.evaluation.identification import evaluate_identification, lfw_split, threshold_at_far
from lookalike.faces.gallery import UNKNOWN, open_set_threshold
from lookalike.faces.gallery_build import build_gallery
from lookalike.faces.gallery_index import FaceGallery
from lookalike.faces.gallery_manifest import GalleryManifest
from lookalike.faces.memory_gallery import GalleryFullError, MemoryGallery
from lookalike.faces.pipeline import NoFaceError
from lookalike.images.loading import ImageError
from lookalike.paths import cache_dir
from model_zoo import DEFAULT_FACE_MODEL

KNOWN = ("Colin_Powell", "Hugo_Chavez", "Tony_Blair")  # two gallery photos each
ADDED = "Jacques_Chirac"  # joins the gallery in the update test
IN_GALLERY = 2


def photos_of(faces: Path, person: str) -> list[Path]:
    return sorted((faces / person).glob("*.jpg"))


@pytest.fixture(scope="module")
def faces(data_root: Path) -> Path:
    return data_root / "faces"


@pytest.fixture(scope="module")
def stranger(faces: Path) -> Path:
    """The photo of the first single-photo person: never in any gallery here."""
    return next(p[0] for p in (photos_of(faces, d.name) for d in sorted(faces.iterdir()) if d.is_dir()) if len(p) == 1)


def make_gallery(faces: Path, folder: Path, people: tuple[str, ...] = KNOWN) -> Path:
    for person in people:
        (folder / person).mkdir(parents=True)
        for photo in photos_of(faces, person)[:IN_GALLERY]:
            shutil.copy(photo, folder / person / photo.name)
    return folder


@pytest.fixture(scope="module")
def built(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("gallery")
    source = make_gallery(faces, root / "photos")
    return root / "index", build_gallery(source, root / "index", processes=1, quiet=True)


@pytest.fixture(scope="module")
def gallery(built: tuple[Path, dict]) -> FaceGallery:
    loaded = FaceGallery.load(built[0])
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def side_by_side(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two probe photos' central regions pasted side by side: Colin Powell left, Tony Blair right (with a
    sliver of a bystander behind Powell)."""
    canvas = Image.new("RGB", (340, 170), (200, 200, 200))
    for x, person in ((0, "Colin_Powell"), (170, "Tony_Blair")):
        photo = Image.open(photos_of(faces, person)[IN_GALLERY]).convert("RGB")
        canvas.paste(photo.crop((45, 40, 205, 200)).resize((170, 170)), (x, 0))
    path = tmp_path_factory.mktemp("group") / "two.jpg"
    canvas.save(path)
    return path


def test_build_report(built: tuple[Path, dict], gallery: FaceGallery) -> None:
    index, report = built
    assert report["faces"] == len(gallery) == IN_GALLERY * len(KNOWN)
    assert report["people"] == len(KNOWN) and gallery.people == set(KNOWN)
    assert report["photos_without_face"] == [] and report["people_without_face"] == [] and report["unreadable"] == []
    assert report["model"] == DEFAULT_FACE_MODEL and report["store"]["kind"] == "annoy"
    assert json.loads((index / "manifest.json").read_text())["faces"] == report["faces"]


def test_identify_known_and_unknown(gallery: FaceGallery, faces: Path, stranger: Path) -> None:
    threshold = open_set_threshold(DEFAULT_FACE_MODEL)
    for person in KNOWN:
        result = gallery.identify(photos_of(faces, person)[IN_GALLERY], top_k=2)
        face = next(f for f in result.faces if f.known)  # LFW photos may hold bystanders too
        assert face.decision == person and face.matches[0].person == person
        assert face.matches[0].distance <= threshold == result.threshold
        assert len(face.matches) == 2 and face.matches[0].distance <= face.matches[1].distance
        assert Path(face.matches[0].photo).parent.name == person
        assert face.matches[0].similarity == pytest.approx(1 - face.matches[0].distance, abs=1e-5)
    result = gallery.identify(stranger)
    assert [f.decision for f in result.faces] == [UNKNOWN] * len(result.faces)
    assert not any(f.known for f in result.faces) and result.faces[0].matches[0].distance > threshold
    assert len(result.faces[0].matches) == len(KNOWN)  # top-5 of a 3-person gallery


def test_threshold_option_and_json(gallery: FaceGallery, stranger: Path) -> None:
    lenient = gallery.identify(stranger, top_k=1, threshold=2.0)
    assert lenient.threshold == 2.0 and lenient.faces[0].known
    assert lenient.faces[0].decision == lenient.faces[0].matches[0].person
    payload = json.loads(json.dumps(gallery.identify(stranger, threshold=0.0).to_dict()))
    assert {"model", "metric", "threshold", "gallery_faces", "faces", "timings_ms"} <= set(payload)
    face = payload["faces"][0]
    assert face["decision"] == UNKNOWN and face["known"] is False and "aligned" not in face
    assert {"person", "distance", "similarity", "photo", "box"} == set(face["matches"][0])
    with pytest.raises(ValueError, match="top_k"):
        gallery.identify(stranger, top_k=0)


def test_a_photo_with_two_faces_names_both(gallery: FaceGallery, side_by_side: Path) -> None:
    result = gallery.identify(side_by_side)
    assert len(result.faces) >= 2 and all(face.matches for face in result.faces)
    left, right = sorted(result.faces[:2], key=lambda face: face.box[0])  # the pasted faces are the largest
    assert (left.decision, right.decision) == ("Colin_Powell", "Tony_Blair")


def test_no_face_and_unreadable_photos(gallery: FaceGallery, tmp_path: Path) -> None:
    blank = tmp_path / "gradient.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1))).convert("RGB").save(blank)
    with pytest.raises(NoFaceError, match=r"no face found in the photo \(.*gradient\.png\)"):
        gallery.identify(blank)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageError, match=r"broken\.jpg"):
        gallery.identify(broken)


def test_build_reports_photos_and_people_without_a_face(faces: Path, tmp_path: Path) -> None:
    source = make_gallery(faces, tmp_path / "photos", KNOWN[:1])
    (source / "Nobody").mkdir()
    Image.fromarray(np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1))).convert("RGB").save(
        source / "Nobody" / "gradient.jpg"
    )
    (source / KNOWN[0] / "notes.txt").write_text("not a photo")
    report = build_gallery(source, tmp_path / "index", processes=1, quiet=True)
    assert report["faces"] == IN_GALLERY and report["people_without_face"] == ["Nobody"]
    assert [(Path(r["path"]).name, r["reason"]) for r in report["photos_without_face"]] == [
        ("gradient.jpg", "no face found")
    ]
    assert [Path(r["path"]).name for r in report["unreadable"]] == ["notes.txt"]
    only_blank = tmp_path / "blank"
    (only_blank / "Nobody").mkdir(parents=True)
    shutil.copy(source / "Nobody" / "gradient.jpg", only_blank / "Nobody")
    with pytest.raises(ValueError, match="no usable face"):
        build_gallery(only_blank, tmp_path / "never", processes=1, quiet=True)
    assert not (tmp_path / "never").exists()


def test_update_adds_and_removes_photos(faces: Path, tmp_path: Path) -> None:
    index, source = tmp_path / "index", make_gallery(faces, tmp_path / "photos")
    build_gallery(source, index, processes=1, quiet=True)  # the module's photos: from the cache
    make_gallery(faces, source, (ADDED,))
    removed = photos_of(faces, KNOWN[0])[1].name
    (source / KNOWN[0] / removed).unlink()
    report = build_gallery(source, index, update=True, processes=1, quiet=True)
    assert report["update"] == {"kept": len(KNOWN) * IN_GALLERY - 1, "added": IN_GALLERY, "removed": 1}
    assert report["photos_embedded"] == IN_GALLERY  # only the added person's photos were embedded
    updated = FaceGallery.load(index)
    try:
        assert updated.people == {*KNOWN, ADDED} and len(updated) == report["faces"]
        assert removed not in {Path(row["path"]).name for row in updated.rows}
        result = updated.identify(photos_of(faces, ADDED)[IN_GALLERY])
        assert ADDED in [face.decision for face in result.faces]
    finally:
        updated.close()


def test_a_failed_build_leaves_the_old_index(
    built: tuple[Path, dict], faces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "index"
    shutil.copytree(built[0], index)
    before = (index / "manifest.json").read_text()

    def fail(manifest: GalleryManifest, folder: Path) -> None:
        (folder / "manifest.json").write_text("{half")
        raise OSError("disk full")

    monkeypatch.setattr(GalleryManifest, "write", fail)
    source = make_gallery(faces, tmp_path / "photos", (*KNOWN, ADDED))
    with pytest.raises(OSError, match="disk full"):
        build_gallery(source, index, processes=1, quiet=True)
    assert (index / "manifest.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    reloaded = FaceGallery.load(index)
    assert reloaded.people == set(KNOWN)
    reloaded.close()


def test_manifest_boxes_name_a_face_of_a_group_photo(
    side_by_side: Path, faces: Path, stranger: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "gallery.csv"
    manifest.write_text(
        "path,person,x1,y1,x2,y2\n"
        f"{side_by_side},Left_Person,0,0,170,170\n"
        f"{side_by_side},Right_Person,170,0,340,170\n"
        f"{stranger},Missing_Box,0,0,20,20\n"
    )
    report = build_gallery(manifest, tmp_path / "index", processes=1, quiet=True)
    assert report["faces"] == 2 and report["people_without_face"] == ["Missing_Box"]
    assert report["photos_without_face"][0]["reason"].startswith("no face at the given box")
    loaded = FaceGallery.load(tmp_path / "index")
    try:
        boxes = {row["person"]: row["box"] for row in loaded.rows}
        assert boxes["Left_Person"][2] <= 175 <= boxes["Right_Person"][0] + 5
        result = loaded.identify(photos_of(faces, "Tony_Blair")[IN_GALLERY])
        assert "Right_Person" in [face.decision for face in result.faces]
    finally:
        loaded.close()


def test_eval_identify_json(built: tuple[Path, dict], faces: Path, stranger: Path, tmp_path: Path, capsys) -> None:
    probes = tmp_path / "probes.csv"
    known = [(p, person) for person in KNOWN for p in photos_of(faces, person)[IN_GALLERY : IN_GALLERY + 2]]
    rows = [*known, (stranger, stranger.parent.name)]
    probes.write_text("path,person\n" + "".join(f"{path},{person}\n" for path, person in rows))
    summary = evaluate_identification(built[0], probes, processes=1, quiet=True)
    assert main(["eval-identify", "--index", str(built[0]), "--probes", str(probes), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    for key in ("rank_1", "rank_5", "dir_at_far_1e-2", "dir_at_far_1e-3", "probes_known", "probes_unknown",
                "gallery_faces"):
        assert key in summary and printed[key] == summary[key], key
    assert (summary["probes_known"], summary["probes_unknown"]) == (len(known), 1)
    assert summary["gallery_faces"] == len(KNOWN) * IN_GALLERY
    assert summary["rank_1"] >= 5 / 6 and summary["rank_5"] == 1.0
    assert summary["exact_search"]["rank_1"] == summary["rank_1"]


def test_threshold_at_far_accepts_no_more_than_the_far() -> None:
    unknown = np.array([0.9, 0.5, 0.7, 0.8, 1.0] * 20)  # 100 probes, 20 at 0.5
    assert threshold_at_far(unknown, 0.1) < 0.5
    assert np.mean(unknown <= threshold_at_far(unknown, 0.2)) == 0.2
    assert np.mean(unknown <= threshold_at_far(unknown, 0.25)) == 0.2  # the next 20 would pass 25%


def test_lfw_split_is_the_protocol(faces: Path, tmp_path: Path) -> None:
    gallery_csv, probes_csv = lfw_split(faces, tmp_path)
    gallery = [line.split(",") for line in gallery_csv.read_text().splitlines()[1:]]
    probes = [line.split(",") for line in probes_csv.read_text().splitlines()[1:]]
    people = {d.name: len(photos_of(faces, d.name)) for d in faces.iterdir() if d.is_dir()}
    singles = sorted(name for name, count in people.items() if count == 1)
    assert len(gallery) == sum(count > 1 for count in people.values()) + (len(singles) + 1) // 2
    assert len(gallery) + len(probes) == sum(people.values())
    assert {p for _, p in gallery} & set(singles) == set(singles[::2])
    assert {p for _, p in probes} & set(singles) == set(singles[1::2])
    assert not {path for path, _ in gallery} & {path for path, _ in probes}
    assert main(["split-faces", str(faces), "--out", str(tmp_path / "again")]) == 0  # the same, from the CLI
    assert (tmp_path / "again" / "gallery.csv").read_text() == gallery_csv.read_text()


def test_memory_gallery_is_capped_and_stays_in_memory(faces: Path, stranger: Path) -> None:
    gallery = MemoryGallery(max_faces=2)
    assert gallery.identify(stranger).faces[0].decision == UNKNOWN  # empty: nobody to name
    files_before = sorted(cache_dir().rglob("*"))
    for person in KNOWN[:2]:
        face = gallery.add(photos_of(faces, person)[0], person)
        assert face.person == person and face.aligned is not None
    with pytest.raises(GalleryFullError):
        gallery.add(photos_of(faces, KNOWN[2])[0], KNOWN[2])
    probe = photos_of(faces, KNOWN[0])[IN_GALLERY]
    result = gallery.identify(probe)
    face = next(f for f in result.faces if f.known)
    assert face.decision == KNOWN[0] and face.matches[0].photo == f"{KNOWN[0]} #1"
    assert face.matches[0].aligned is not None and result.gallery_faces == 2
    assert sorted(cache_dir().rglob("*")) == files_before  # nothing written
    assert gallery.remove(KNOWN[0]) == 1 and len(gallery) == 1
    assert KNOWN[0] not in [f.decision for f in gallery.identify(probe).faces]
    with pytest.raises(ValueError, match="name"):
        gallery.add(probe, "  ")


def test_one_call_identify_and_cli(faces: Path, tmp_path: Path, capsys) -> None:
    source = make_gallery(faces, tmp_path / "photos")  # the module's photos: embedded already, from the cache
    (source / "Nobody").mkdir()
    (source / "Nobody" / "notes.txt").write_text("not a photo")
    index = tmp_path / "index"
    assert main(["build-faces", str(source), "--out", str(index)]) == 0
    printed = capsys.readouterr().out
    assert f"indexed {IN_GALLERY * len(KNOWN)} faces of {len(KNOWN)} people" in printed
    assert "no usable face of 1 of the people, who cannot be identified: Nobody" in printed
    probe = photos_of(faces, KNOWN[1])[IN_GALLERY]
    result = lookalike.identify(probe, index=index, top_k=1)
    assert KNOWN[1] in [face.decision for face in result.faces]
    assert main(["identify", str(probe), "--index", str(index), "--top-k", "1", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert KNOWN[1] in [face["decision"] for face in printed["faces"]]
    assert main(["identify", str(probe), "--index", str(index)]) == 0
    assert f": {KNOWN[1]} (distance " in capsys.readouterr().out
    assert main(["identify", str(probe), "--index", str(tmp_path / "missing")]) == 2
    assert "no face gallery" in capsys.readouterr().err


def test_one_call_identify_follows_an_updated_gallery(faces: Path, tmp_path: Path) -> None:
    """A long-running process calling `lookalike.identify` names a person `build-faces --update` added,
    within seconds, without a restart."""
    index, source = tmp_path / "index", make_gallery(faces, tmp_path / "photos")
    build_gallery(source, index, processes=1, quiet=True)
    probe = photos_of(faces, ADDED)[IN_GALLERY]
    assert ADDED not in [face.decision for face in lookalike.identify(probe, index=index).faces]
    make_gallery(faces, source, (ADDED,))
    build_gallery(source, index, update=True, processes=1, quiet=True)
    deadline = time.monotonic() + 15
    while ADDED not in (named := [face.decision for face in lookalike.identify(probe, index=index).faces]):
        assert time.monotonic() < deadline, f"still answering from the old gallery: {named}"
        time.sleep(0.25)


@pytest.mark.slow
def test_milvus_store(faces: Path, tmp_path: Path) -> None:
    source = make_gallery(faces, tmp_path / "photos")
    report = build_gallery(source, tmp_path / "index", store="milvus", processes=1, quiet=True)
    assert report["store"]["kind"] == "milvus"
    loaded = FaceGallery.load(tmp_path / "index")
    try:
        result = loaded.identify(photos_of(faces, KNOWN[2])[IN_GALLERY])
        assert KNOWN[2] in [face.decision for face in result.faces]
    finally:
        loaded.close()
