"""Re-ranking by local-feature spatial verification, on a few real catalog photos (seconds).

Accuracy is measured on the GroceryStore protocol with `eval-products --rerank`, not here: these tests pin the
behaviour the measured gain rests on (a geometric copy verifies, an unrelated photo does not), and the
wiring: features stored at build time, kept by an update, used by search only when asked.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.images.loading import load_image
from lookalike.products import spatial
from lookalike.products.build import build_index
from lookalike.products.index import IndexCorruptError
from lookalike.products.local_features import LocalFeatureTable, write_local_features
from lookalike.products.parts import keypoints
from lookalike.products.results import QueryCues
from lookalike.products.search import ProductSearcher
from lookalike.products.spatial import LocalFeatures, count_inliers, extract, spatial_scores

MILK = "milk/grocery_train_Arla-Standard-Milk_001.jpg"
OTHERS = ("watches/myntra_10098.jpg", "shoes", "juice")


@pytest.fixture(scope="module")
def milk(data_root: Path) -> Image.Image:
    return load_image(data_root / "products" / MILK)


def _unrelated(data_root: Path) -> list[Image.Image]:
    """A watch, a shoe and a juice carton: other products, other shapes, other prints."""
    root = data_root / "products"
    return [load_image(root / OTHERS[0])] + [
        load_image(sorted((root / folder).glob("*.jpg"))[0]) for folder in OTHERS[1:]
    ]


def _distorted(image: Image.Image) -> Image.Image:
    """Cropped to its middle 80 %, rotated 20 degrees and shrunk to 70 %: what a second shot of the same
    pack roughly does, with every pixel moved."""
    width, height = image.size
    crop = image.crop((width // 10, height // 10, width - width // 10, height - height // 10))
    rotated = crop.rotate(20, resample=Image.BICUBIC, expand=True, fillcolor=(128, 128, 128))
    return rotated.resize((round(rotated.width * 0.7), round(rotated.height * 0.7)), Image.BICUBIC)


def test_a_distorted_copy_verifies_and_unrelated_photos_do_not(milk: Image.Image, data_root: Path) -> None:
    query = extract(milk)
    candidates = [extract(_distorted(milk))] + [extract(image) for image in _unrelated(data_root)]
    scores = spatial_scores(query, [*candidates, None])
    assert scores[0] >= 60
    assert (scores[1:-1] < 15).all(), scores  # dev split: other products median 6
    assert scores[-1] == 0  # a candidate without stored features is simply unverified


def test_a_query_at_its_smaller_side_verifies_what_the_catalog_stored_at_its_own(
    milk: Image.Image, data_root: Path
) -> None:
    """Search extracts the query at QUERY_SIDE: a second shot of the pack stored at MAX_SIDE still verifies,
    other products still do not."""
    assert spatial.QUERY_SIDE < spatial.MAX_SIDE
    query = extract(milk, spatial.QUERY_SIDE)
    assert float(query.points.max()) <= spatial.QUERY_SIDE
    candidates = [extract(_distorted(milk))] + [extract(image) for image in _unrelated(data_root)]
    scores = spatial_scores(query, candidates)
    assert scores[0] >= 40
    assert (scores[1:] < 15).all(), scores


def test_only_the_strongest_match_points_are_matched(milk: Image.Image, monkeypatch) -> None:
    features = extract(milk)
    assert len(features.points) > 100
    strongest = features.strongest(100)
    assert np.array_equal(strongest.descriptors, features.descriptors[:100])
    assert features.strongest(10_000) is features
    copy = extract(_distorted(milk))
    monkeypatch.setattr(spatial, "MATCH_POINTS", 100)
    assert count_inliers(features, copy) == count_inliers(strongest, copy.strongest(100)) <= 100


def test_features_are_capped_compact_and_round_trip(milk: Image.Image, data_root: Path, tmp_path: Path) -> None:
    features = extract(milk)
    assert 0 < len(features.points) <= spatial.MAX_POINTS
    assert features.descriptors.dtype == np.uint8 and features.descriptors.shape == (len(features.points), 128)
    assert features.points.max() <= spatial.MAX_SIDE
    write_local_features(tmp_path, [7], [data_root / "products" / MILK])  # what a build stores, read back
    (again,) = LocalFeatureTable(tmp_path).get([7])
    np.testing.assert_array_equal(again.points, features.points)
    np.testing.assert_array_equal(again.descriptors, features.descriptors)
    assert count_inliers(again, features) == count_inliers(features, features) > 100


def test_blank_photos_have_no_features_and_never_verify(milk: Image.Image) -> None:
    blank = extract(Image.new("RGB", (300, 200), (240, 240, 240)))
    assert len(blank.points) == 0 and blank.nbytes == 0
    assert spatial_scores(extract(milk), [blank]).tolist() == [0]


def test_rerank_lifts_verified_candidates_over_closer_unverified_ones() -> None:
    ids = ["a", "b", "c", "d", "e"]
    cosines = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    inliers = np.array([0, 2, 40, 15])  # "e" was not verified at all
    order, scores = spatial.rerank(ids, cosines, inliers)
    assert order == ["c", "d", "b", "a", "e"]
    assert (np.diff(scores) <= 0).all()
    assert spatial.rerank(ids, cosines, np.zeros(5, int))[0] == ids  # nothing verified: cosine order kept
    assert spatial.rerank(ids, cosines, inliers, weight=0.0)[0] == ids


def test_verified_candidates_vote_for_their_category() -> None:
    probs = np.array([0.6, 0.3, 0.1])  # the head prefers category 0
    labels = np.array([0, 1, 1, 2])
    strong = np.array([3, spatial.VOTE_INLIERS, 50, spatial.VOTE_INLIERS - 1])  # two of category 1 verify
    voted = spatial.category_vote(probs, labels, strong)
    assert voted.argmax() == 1 and voted.sum() == pytest.approx(1.0)
    assert voted[2] == pytest.approx((1 - spatial.VOTE_WEIGHT) * 0.1)  # under the inlier bar: no vote
    weak = np.full(4, spatial.VOTE_INLIERS - 1)
    assert spatial.category_vote(probs, labels, weak) is probs  # nothing verified: the head's ranking


def test_a_verification_matches_each_candidate_once(milk: Image.Image, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spatial, "STOP_INLIERS", None)  # every candidate matched (the early exit: below)
    looked_up: list[list[int]] = []
    stored = {1: extract(_distorted(milk)), 2: extract(Image.new("RGB", (80, 80), "white"))}

    def lookup(ids: list[int]) -> list[LocalFeatures | None]:
        looked_up.append(list(ids))
        return [stored.get(i) for i in ids]

    known: dict[int, int] = {}  # what a query's cue keeps (`parts.keypoints.KeypointCue.inliers`)
    verification = spatial.Verification(extract(milk), lookup, known)
    first = verification.counts([1, 2, 3])
    again = verification.counts([3, 1, 1])
    assert first[0] >= 60 and first[1:].tolist() == [0, 0]
    assert again.tolist() == [0, first[0], first[0]] and looked_up == [[1], [2], [3]]
    assert known == {1: first[0], 2: 0, 3: 0}
    resumed = spatial.Verification(extract(milk), lookup, known)  # a search re-run from the kept cue
    assert resumed.counts([2, 1]).tolist() == [0, first[0]] and looked_up == [[1], [2], [3]]


def test_the_early_exit_stops_at_a_clear_candidate(milk: Image.Image, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = {1: extract(Image.new("RGB", (80, 80), "white")), 2: extract(_distorted(milk)), 3: extract(milk)}
    looked_up: list[int] = []

    def lookup(ids: list[int]) -> list[LocalFeatures | None]:
        looked_up.extend(ids)
        return [stored.get(i) for i in ids]

    monkeypatch.setattr(spatial, "STOP_INLIERS", 30)
    verification = spatial.Verification(extract(milk), lookup)
    counts = verification.counts([1, 2, 3])
    assert counts[0] == 0 and counts[1] >= 60 and counts[2] == 0  # 3 never matched: 2 decided it
    assert looked_up == [1, 2]
    assert verification.counts([3, 2]).tolist()[0] > counts[1]  # asked first, 3 is matched


# ---------------------------------------------------------------- wired into build and search
FAST = {"size": 160, "flip": False, "show_bar": False, "trees": 4}


@pytest.fixture(scope="module")
def verified_index(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Four photos of each of three milk products and of some juices, indexed with local features; and
    the catalog folder."""
    catalog = tmp_path_factory.mktemp("lf_catalog")
    milk = sorted((data_root / "products" / "milk").glob("grocery_train_*.jpg"))
    products = sorted({photo.name.rsplit("_", 1)[0] for photo in milk})[:3]
    for folder, photos in (("milk", [p for p in milk if p.name.rsplit("_", 1)[0] in products]),
                           ("juice", sorted((data_root / "products" / "juice").glob("*.jpg")))):
        (catalog / folder).mkdir()
        for photo in [p for p in photos if folder == "juice" or int(p.stem.rsplit("_", 1)[1]) <= 4][:12]:
            (catalog / folder / photo.name).symlink_to(photo)
    out = tmp_path_factory.mktemp("lf_index") / "index"
    build_index(catalog, out, local_features=True, **FAST)
    return out, catalog


def test_search_verifies_the_first_hits_and_lifts_the_same_product(
    verified_index: tuple[Path, Path], tmp_path: Path
) -> None:
    index, catalog = verified_index
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["local_features"]["items"] == manifest["items"] == 24
    target = sorted((catalog / "milk").glob("*.jpg"))[5]
    query = tmp_path / "second_shot.jpg"
    _distorted(load_image(target)).save(query, quality=90)
    searcher = ProductSearcher.load(index)
    verified = searcher.search(query, top_k=12, scope="all", rerank=True)
    plain = searcher.search(query, top_k=12, scope="all", rerank=False)
    assert Path(verified.results[0].path).name == target.name and verified.results[0].inliers >= 30
    assert sorted(h.id for h in verified.results) == sorted(h.id for h in plain.results)  # re-ordered, same set
    assert all(h.inliers is None for h in plain.results) and "rerank" not in plain.timings_ms
    assert sum(h.inliers is not None for h in verified.results) == min(spatial.TOP_N, 12)
    assert "rerank" in verified.timings_ms and verified.summary()["results"][0]["inliers"] >= 30
    default = searcher.search(query, top_k=12, scope="all").results[0].inliers  # on for an index with features
    assert (default is not None) == keypoints.DEFAULT_RERANK
    vector, cues = searcher.embed_query(query, rerank=True)
    assert "local_features" in cues and "words" not in cues  # an index without words reads none
    ranking = searcher.categorize(vector, cues)
    unverified = searcher.categorize(vector, QueryCues({k: cue for k, cue in cues.items() if k != "local_features"}))
    assert dict(ranking)["milk"] > dict(unverified)["milk"]  # its own photos vote for milk
    assert ranking[: len(verified.categories)] == verified.categories  # what search ranked


def test_eval_products_reranks_as_search_does(
    verified_index: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """eval-products scores what search returns: re-ranked by default on an index with local features."""
    from lookalike.cli import main as cli

    index, catalog = verified_index
    reports = {}
    for flag in ([], ["--no-rerank"]):
        assert cli.main(["eval-products", "--index", str(index), "--queries", str(catalog), "--top-k", "5",
                         "--latency-queries", "2", "--json", *flag]) == 0
        reports[tuple(flag)] = json.loads(capsys.readouterr().out)
    assert reports[()]["rerank"] is keypoints.DEFAULT_RERANK and reports[("--no-rerank",)]["rerank"] is False
    assert reports[()]["queries"] == reports[("--no-rerank",)]["queries"] == 24


def test_rerank_needs_local_features_and_bad_ones_fail_at_load(
    verified_index: tuple[Path, Path], tmp_path: Path
) -> None:
    index, _ = verified_index
    plain = tmp_path / "plain"
    shutil.copytree(index, plain)
    manifest = json.loads((plain / "manifest.json").read_text())
    del manifest["local_features"]
    (plain / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="--local-features"):
        ProductSearcher.load(plain).search(np.zeros((64, 64, 3), np.uint8), rerank=True)
    broken = tmp_path / "broken"
    shutil.copytree(index, broken)
    offsets = np.load(broken / "local" / "offsets.npy")
    np.save(broken / "local" / "offsets.npy", offsets[:-2])
    with pytest.raises(IndexCorruptError, match="local features"):
        ProductSearcher.load(broken)


def test_update_copies_unchanged_photos_features_and_extracts_only_new_ones(
    verified_index: tuple[Path, Path], data_root: Path, tmp_path: Path
) -> None:
    index, catalog = verified_index
    copy, grown = tmp_path / "index", tmp_path / "catalog"
    shutil.copytree(index, copy)
    shutil.copytree(catalog, grown, symlinks=True)
    extra = sorted((data_root / "products" / "juice").glob("*.jpg"))[-1]
    (grown / "juice" / extra.name).symlink_to(extra)
    report = build_index(grown, copy, update=True, show_bar=False)
    assert report["local_features"]["items"] == report["items"] == 25
    assert report["local_features"]["reused"] == 24  # only the new photo was extracted
    table = LocalFeatureTable(copy)
    rows = {Path(row["path"]).name: row["id"] for row in ProductSearcher.load(copy).index.rows}
    new, missing = table.get([rows[extra.name], max(rows.values()) + 1])
    assert new is not None and len(new.points) > 0 and missing is None
    before, after = LocalFeatureTable(index).get([0])[0], table.get([0])[0]
    assert np.array_equal(before.points, after.points) and np.array_equal(before.descriptors, after.descriptors)
    manifest = json.loads((copy / "manifest.json").read_text())  # features made with other settings ...
    manifest["local_features"]["max_points"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert build_index(grown, copy, update=True, show_bar=False)["local_features"]["reused"] == 0  # ... redone
    offsets = np.load(copy / "local" / "offsets.npy")  # damaged features ...
    np.save(copy / "local" / "offsets.npy", offsets[:-2])
    assert build_index(grown, copy, update=True, show_bar=False)["local_features"]["reused"] == 0  # ... mended
    assert LocalFeatureTable(copy).get([0])[0] is not None


def test_text_output_and_gallery_captions_show_a_verified_hits_keypoint_matches(
    verified_index: tuple[Path, Path], data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lookalike.cli import main as cli
    from lookalike.presentation import hit_caption

    index, _ = verified_index
    query = str(data_root / "products" / MILK)
    texts = {}
    for flag in ("--rerank", "--no-rerank"):
        assert cli.main(["search", "--index", str(index), query, "--top-k", "5", "--scope", "all", flag]) == 0
        # the hit lines (after the category line, and the open-set line when the query is flagged)
        texts[flag] = [line for line in capsys.readouterr().out.splitlines() if re.match(r"\s*\d+\. ", line)]
    top = ProductSearcher.load(index).search(query, top_k=5, scope="all", rerank=True).results[0]
    assert texts["--rerank"][0].endswith(f"[{top.inliers} keypoint matches]") and top.inliers > 0
    assert len(texts["--no-rerank"]) == 5 and not any("keypoint" in line for line in texts["--no-rerank"])
    assert f"{top.inliers} keypoint matches" in hit_caption(top.category, top.similarity, inliers=top.inliers)
    assert "keypoint" not in hit_caption(top.category, top.similarity, inliers=None)
    assert "keypoint" not in hit_caption(top.category, top.similarity, inliers=0)  # checked, nothing shared
