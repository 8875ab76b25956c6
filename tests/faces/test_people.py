"""People: a photo collection's faces grouped into people (`cluster_faces`), listed and corrected (`People`),
kept through updates and re-clustering, and searched as a gallery of the named people.

A few real LFW photos of four people, listed by a CSV of paths (read in place, never copied), plus a photo
without a face and a file that is no image."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.evaluation.clustering import bcubed, pairwise, score_clustering
from lookalike.faces import people_build
from lookalike.faces.any_gallery import open_gallery
from lookalike.faces.people_build import cluster_faces
from lookalike.faces.people_cluster import Constraints, agglomerate, edges_of
from lookalike.faces.people_index import People, PeopleError
from lookalike.faces.photo_faces import embed_photos
from lookalike.vectors.index_folder import IndexLockedError, IndexWriteError, write_lock
from lookalike.vectors.knn_graph import graph_recall, knn_graph

PEOPLE = ["Abel_Pacheco", "Akhmed_Zakayev", "Alejandro_Atchugarry", "Alanis_Morissette"]


@pytest.fixture(scope="module")
def photos(data_root: Path) -> list[Path]:
    return sorted(p for person in PEOPLE for p in (data_root / "faces" / person).glob("*.jpg"))


@pytest.fixture(scope="module")
def extras(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("extras")
    Image.new("RGB", (200, 200), (120, 120, 120)).save(folder / "blank.jpg")
    (folder / "broken.jpg").write_text("not an image")
    return [folder / "blank.jpg", folder / "broken.jpg"]


def listing(tmp_path: Path, paths: list[Path]) -> Path:
    csv = tmp_path / "photos.csv"
    csv.write_text("path\n" + "".join(f"{p}\n" for p in paths))
    return csv


def centred(people: People) -> dict[str, int | None]:
    """photo -> the person of its centred face (the one LFW labels)."""
    paths = sorted({people.photo_path(r) for r in people.rows})
    centre = {str(p): f.centre for p, f in zip(paths, embed_photos(paths, people.model, quiet=True).photos,
                                              strict=True)}
    return {Path(r["photo"]).name: r["person"] for r in people.rows if centre[str(people.photo_path(r))] == r["face"]}


def identity(photo: str) -> str:
    return photo.rsplit("_", 1)[0]


def test_faces_are_grouped_into_people_and_bad_input_is_listed(tmp_path, photos, extras) -> None:
    report = cluster_faces(listing(tmp_path, photos + extras), tmp_path / "people", quiet=True)
    assert [row["path"].endswith("blank.jpg") for row in report["photos_without_face"]] == [True]
    assert [row["path"].endswith("broken.jpg") for row in report["unreadable"]] == [True]
    people = People(tmp_path / "people")
    by_photo = centred(people)
    assert len(by_photo) == len(photos)
    for person in PEOPLE:  # each person's photos together, and with nobody else's
        found = {p for photo, p in by_photo.items() if identity(photo) == person}
        assert len(found) == 1, person
        assert {identity(photo) for photo, p in by_photo.items() if p in found} == {person}
    listed = people.to_dict()
    assert set(listed) == {"people", "unsure"}
    assert set(listed["people"][0]) == {"id", "name", "faces"}
    assert set(listed["people"][0]["faces"][0]) == {"photo", "box", "face"}
    sizes = [len(p["faces"]) for p in listed["people"]]
    assert sizes == sorted(sizes, reverse=True)
    people.close()


def test_an_update_keeps_ids_names_and_faces(tmp_path, photos) -> None:
    first = [p for p in photos if not p.name.startswith("Alejandro")]
    cluster_faces(listing(tmp_path, first), tmp_path / "people", quiet=True)
    people = People(tmp_path / "people")
    abel = centred(people)["Abel_Pacheco_0001.jpg"]
    people.name(abel, "Abel")
    before = {(r["photo"], r["face"]) for r in People(tmp_path / "people").faces_of(abel)}
    dropped = next(p for p in photos if p.name.startswith("Akhmed"))
    report = cluster_faces(listing(tmp_path, [p for p in photos if p != dropped]), tmp_path / "people",
                           update=True, quiet=True)
    assert report["update"]["added_faces"] >= 2 and report["update"]["removed_faces"] >= 1
    after = People(tmp_path / "people")
    assert after.names()[abel] == "Abel"
    assert before <= {(r["photo"], r["face"]) for r in after.faces_of(abel)}
    assert not any(r["photo"].endswith(dropped.name) for r in after.rows)
    assert "Alejandro_Atchugarry_0001.jpg" in centred(after)
    with pytest.raises(FileNotFoundError):
        cluster_faces(listing(tmp_path, photos), tmp_path / "nothing", update=True, quiet=True)


def test_corrections_hold_through_updates_and_reclustering(tmp_path, photos) -> None:
    out = tmp_path / "people"
    cluster_faces(listing(tmp_path, photos), out, quiet=True)
    people = People(out)
    by = centred(people)
    abel, akhmed = by["Abel_Pacheco_0001.jpg"], by["Akhmed_Zakayev_0001.jpg"]
    people.merge(abel, akhmed)  # a wrong merge the user asks for is kept as asked
    refused = next(r for r in People(out).rows if r["photo"].endswith("Abel_Pacheco_0002.jpg"))
    People(out).not_person(refused["photo"], refused["face"], akhmed)
    split_off = next(r for r in People(out).rows if r["photo"].endswith("Akhmed_Zakayev_0002.jpg"))
    new = People(out).split(akhmed, [(split_off["photo"], split_off["face"])])
    People(out).name(akhmed, "Merged")
    for update in (True, False):  # an update, then a re-clustering from scratch
        cluster_faces(listing(tmp_path, photos), out, update=update, quiet=True)
        now = People(out)
        by = centred(now)
        assert now.names()[akhmed] == "Merged"
        assert by["Abel_Pacheco_0001.jpg"] == by["Akhmed_Zakayev_0001.jpg"] == akhmed
        assert by["Abel_Pacheco_0002.jpg"] != akhmed
        assert by["Akhmed_Zakayev_0002.jpg"] == new
    with pytest.raises(PeopleError):
        People(out).merge(akhmed, akhmed)
    with pytest.raises(PeopleError):
        People(out).move("no/such.jpg", 0, akhmed)


def test_a_correction_waits_for_no_build_and_a_failed_build_changes_nothing(tmp_path, photos, monkeypatch) -> None:
    out = tmp_path / "people"
    cluster_faces(listing(tmp_path, photos), out, quiet=True)
    before = People(out).to_dict()
    held, release = threading.Event(), threading.Event()

    def build_holding_the_lock() -> None:
        with write_lock(out):
            held.set()
            release.wait(30)

    builder = threading.Thread(target=build_holding_the_lock)
    builder.start()
    held.wait(30)
    try:
        with pytest.raises(IndexLockedError):  # a build holds the lock: a correction is refused, not interleaved
            People(out).name(before["people"][0]["id"], "X")
    finally:
        release.set()
        builder.join()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(people_build, "write_state", broken)
    with pytest.raises(IndexWriteError):  # a full disk: the index in use is unchanged
        cluster_faces(listing(tmp_path, photos[:3]), out, quiet=True)
    assert People(out).to_dict() == before


def test_named_people_answer_identify(tmp_path, photos) -> None:
    out = tmp_path / "people"
    cluster_faces(listing(tmp_path, [p for p in photos if p.name != "Abel_Pacheco_0004.jpg"]), out, quiet=True)
    people = People(out)
    people.name(centred(people)["Abel_Pacheco_0001.jpg"], "Abel")
    gallery = open_gallery(out)
    assert len(gallery) == len(People(out).faces_of(centred(people)["Abel_Pacheco_0001.jpg"]))
    result = gallery.identify(next(p for p in photos if p.name == "Abel_Pacheco_0004.jpg"))
    assert any(face.decision == "Abel" for face in result.faces)
    gallery.close()


def test_page_corrections_are_the_admins_only(tmp_path, photos) -> None:
    pytest.importorskip("gradio")
    from lookalike.app.admin import Admin, NotAdminError
    from lookalike.app.people_tab import make_corrections, overview
    from lookalike.app.services import Services

    out = tmp_path / "people"
    cluster_faces(listing(tmp_path, photos), out, quiet=True)
    token = "a-long-admin-token"
    correct = make_corrections(Services(products=None, face_models=[], admin=Admin(token)), out)
    first = People(out).to_dict()["people"][0]["id"]
    with pytest.raises(NotAdminError):
        correct("name", str(first), "Mallory", None, None)
    with pytest.raises(NotAdminError):
        correct("name", str(first), "Mallory", None, "wrong-token-123")
    assert People(out).names()[first] is None
    correct("name", str(first), "Ada", None, token)
    assert People(out).names()[first] == "Ada"
    pictures, ids, _ = overview(out)
    assert ids[0] == first and pictures[0][1].startswith("Ada") and max(pictures[0][0].size) <= 96
    off = make_corrections(Services(products=None, face_models=[], admin=Admin(None)), out)
    with pytest.raises(NotAdminError):
        off("name", str(first), "Eve", None, token)


def test_clustering_scores_by_hand() -> None:
    labels, clusters = ["a", "a", "b", "b", "c"], [0, 0, 0, 1, 2]
    assert bcubed(labels, clusters) == pytest.approx((11 / 15, 0.8, 2 * (11 / 15) * 0.8 / (11 / 15 + 0.8)))
    assert pairwise(labels, clusters)[:2] == pytest.approx((1 / 3, 1 / 2))
    perfect = score_clustering(labels, [0, 0, 1, 1, 2], bootstrap=0)
    assert perfect.bcubed_f == perfect.pairwise_f == 1.0


def _at(*degrees: float) -> np.ndarray:
    """Unit vectors in a plane at these angles: cosine of two is the cosine of their angle's difference."""
    radians = np.radians(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


def test_merging_obeys_the_constraints() -> None:
    units, heads, tails = _at(0, 10, 20, 30, 120), np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4])
    assert agglomerate(units, heads, tails, 0.5).tolist() == [0, 0, 0, 0, 1]
    pinned = Constraints(owner={0: 7, 3: 8})  # two people pinned apart never merge
    labels = agglomerate(units, heads, tails, 0.5, pinned)
    assert labels[0] != labels[3]
    refused = Constraints(owner={0: 7}, forbidden={2: {7}})
    assert agglomerate(units, heads, tails, 0.5, refused)[2] != agglomerate(units, heads, tails, 0.5, refused)[0]
    frozen = Constraints(frozen={0: 1, 3: 2})
    labels = agglomerate(units, heads, tails, 0.5, frozen)
    assert labels[0] != labels[3] and labels[1] == labels[0]


def test_average_linkage_counts_every_pair_not_only_the_graphs_edges() -> None:
    # a chain 0 - 1 - 2 (cosine 0.64 each link) whose ends are far apart (cosine -0.17): the graph knows only
    # the two links, but the mean over all pairs of {0, 1} and {2} is 0.24, under the threshold
    units, heads, tails = _at(0, 50, 100), np.array([0, 1]), np.array([1, 2])
    assert agglomerate(units, heads, tails, 0.5).tolist() == [0, 0, 1]
    assert agglomerate(units, heads, tails, 0.5, linkage="single").tolist() == [0, 0, 0]


def test_the_neighbour_graph_finds_the_exact_neighbours() -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((50, 64)).astype(np.float32)
    vectors = centres[rng.integers(0, 50, 3000)] + 0.3 * rng.standard_normal((3000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    neighbours, cosines = knn_graph(vectors, 10)
    assert graph_recall(vectors, neighbours) >= 0.95
    assert not np.any(neighbours == np.arange(3000)[:, None])
    assert np.all(np.diff(cosines, axis=1) <= 0)
    heads, tails = edges_of(neighbours)
    assert np.all(heads < tails) and len(set(zip(heads.tolist(), tails.tolist(), strict=True))) == len(heads)
