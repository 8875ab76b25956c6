"""Product index build, search, atomic replacement, errors and CLI, on a few real catalog photos.

Small on purpose (3 categories x 8 photos at 160 px, no flip), so the file runs in well under two
minutes on 2 cores; accuracy is measured on the full split with `eval-products`, not here.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from lookalike.cli import main as cli
from lookalike.images.loading import load_image
from lookalike.products import build as build_module
from lookalike.products.build import build_index
from lookalike.products.calibration import linear_similarity
from lookalike.products.catalog import from_manifest
from lookalike.products.heads import NeighbourVote
from lookalike.products.index import IndexCorruptError, IndexMissingError, backup_dir
from lookalike.products.parts.head_view import DEFAULT_HEAD_MODEL, HEAD_VIEWS, HeadView, read_head_views
from lookalike.products.search import ProductSearcher
from lookalike.vectors.stores import annoy_store
from model_zoo.registry import UnknownModelError
from tests.products.tiny_index import folder_digests

CATEGORIES = ("milk", "sunglasses", "watches")
PER_CATEGORY = 8
QUERIES = 2
FAST = {"fast": True, "size": 160, "flip": False, "show_bar": False}


def _link_photos(data_root: Path, root: Path, start: int, count: int) -> None:
    for category in CATEGORIES:
        (root / category).mkdir(parents=True)
        for photo in sorted((data_root / "products" / category).glob("*.jpg"))[start : start + count]:
            (root / category / photo.name).symlink_to(photo)


@pytest.fixture(scope="module")
def catalog(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos (symlinked) plus three unreadable files that the build must skip and report."""
    root = tmp_path_factory.mktemp("catalog")
    _link_photos(data_root, root, 0, PER_CATEGORY)
    (root / "milk" / "notes.jpg").write_text("not a photo at all")
    (root / "milk" / "cut.jpg").write_bytes(sorted((root / "milk").glob("*.jpg"))[0].read_bytes()[:2000])
    (root / "watches" / "empty.jpg").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def queries(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("queries")
    _link_photos(data_root, root, PER_CATEGORY, QUERIES)
    return root


@pytest.fixture(scope="module")
def index(catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("indexes") / "index"
    build_index(catalog, out, trees=4, **FAST)
    return out


def test_build_report_counts_and_skips(index: Path) -> None:
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["items"] == len(CATEGORIES) * PER_CATEGORY
    assert manifest["counts"] == dict.fromkeys(CATEGORIES, PER_CATEGORY)
    assert manifest["skipped_count"] == 3
    reasons = {Path(s["path"]).name: s["reason"] for s in manifest["skipped"]}
    assert "not an image" in reasons["notes.jpg"] and "empty" in reasons["empty.jpg"]
    assert "truncated" in reasons["cut.jpg"]
    assert 0.0 <= manifest["head"]["held_out_accuracy"] <= 1.0
    assert {"model", "dim", "metric", "store", "build_seconds", "versions"} <= set(manifest)
    assert manifest["store"]["kind"] == "annoy" and manifest["store"]["trees"] == 4


def test_rebuild_reuses_cached_embeddings(catalog: Path, tmp_path: Path) -> None:
    report = build_index(catalog, tmp_path / "again", trees=4, **FAST)
    assert report["cache_hits"] == report["items"]


def test_category_head_reads_the_second_backbones_view(index: Path, catalog: Path, data_root: Path,
                                                       tmp_path: Path) -> None:
    searcher = ProductSearcher.load(index)
    searcher.parts["neighbour_vote"].settings = NeighbourVote(weight=0.0)  # the head's own probabilities
    view = searcher.part("head_view").embedder
    assert HeadView.entry(searcher.index.manifest) == view.config
    assert view.name == DEFAULT_HEAD_MODEL != searcher.embedder.name
    assert searcher.index.head.coef.shape[1] == searcher.embedder.dim + view.dim
    photo = sorted((data_root / "products" / "sunglasses").glob("*.jpg"))[-1]
    vector, cues = searcher.embed_query(photo)
    np.testing.assert_allclose(cues["head_view"], view.embed([load_image(photo)])[0], atol=1e-5)
    joined = np.concatenate([vector, cues["head_view"]]) / np.sqrt(2.0)
    assert np.linalg.norm(joined) == pytest.approx(1.0, abs=1e-5)
    expected = dict(zip(searcher.index.head.classes, searcher.index.head.predict_proba(joined)[0], strict=True))
    assert dict(searcher.categorize(vector, cues)) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match=DEFAULT_HEAD_MODEL):  # a vector alone is not what this head reads
        searcher.categorize(vector)

    build_index(catalog, tmp_path / "plain", head_model="none", **FAST)
    plain = ProductSearcher.load(tmp_path / "plain")
    assert plain.part("head_view") is None and HeadView.entry(plain.index.manifest) is None
    assert plain.index.head.coef.shape[1] == plain.embedder.dim
    assert plain.categorize(vector)[0][0] == plain.search(photo).categories[0][0]


def test_overlapped_decoding_embeds_like_one_photo_at_a_time(index: Path) -> None:
    """The build decodes in threads, batches ahead of the network: same vectors, same order, as embedding
    each photo alone."""
    from model_zoo import create_embedder

    loaded = ProductSearcher.load(index).index
    embedder = create_embedder(**loaded.manifest.embedder)
    rows = list(loaded.rows)[::7]
    _, stored = loaded.store.vectors([row["id"] for row in rows])
    alone = [embedder.embed([load_image(row["path"], draft=embedder.preprocess.draft)])[0] for row in rows]
    np.testing.assert_allclose(np.stack(alone), stored, atol=1e-5)


def test_gallery_thumbnails_are_made_at_build_time(index: Path, data_root: Path) -> None:
    from PIL import Image

    from lookalike.images.thumbnails import THUMBNAIL_SIDE

    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["thumbnails"] == manifest["items"]
    hit = ProductSearcher.load(index).search(sorted((data_root / "products" / "watches").glob("*.jpg"))[-1]).results[0]
    thumbnail = Image.open(hit.thumbnail)
    assert Path(hit.thumbnail).parent == index / "thumbs" and max(thumbnail.size) <= THUMBNAIL_SIDE
    photo = Image.open(hit.path)
    assert abs(thumbnail.width / thumbnail.height - photo.width / photo.height) < 0.05


def test_search_returns_k_hits_most_similar_first(index: Path, data_root: Path) -> None:
    searcher = ProductSearcher.load(index)
    query = sorted((data_root / "products" / "watches").glob("*.jpg"))[-1]
    for scope, k in (("all", 12), ("category", 5)):
        result = searcher.search(query, top_k=k, scope=scope)
        similarities = [hit.similarity for hit in result.results]
        assert len(result.results) == k and [hit.rank for hit in result.results] == list(range(1, k + 1))
        assert all(0.0 <= s <= 1.0 for s in similarities)
        cosines = [hit.cosine for hit in result.results]
        assert cosines == sorted(cosines, reverse=True)
        for hit in result.results:  # d^2 = 2 - 2 cos; the similarity is the build's calibration of the cosine
            assert hit.cosine == pytest.approx(1.0 - hit.distance**2 / 2.0, abs=1e-5)
            assert hit.similarity == pytest.approx(searcher.similarity(hit.cosine, hit.category), abs=1e-4)
    assert result.categories[0][0] == "watches"
    assert {hit.category for hit in result.results} == {"watches"}
    assert sum(prob for _, prob in result.categories) <= 1.0 + 1e-6


def test_blend_scope_ranks_by_similarity_times_category_probability(index: Path, data_root: Path) -> None:
    searcher = ProductSearcher.load(index)
    vector, cues = searcher.embed_query(sorted((data_root / "products" / "sunglasses").glob("*.jpg"))[-1])
    ranking = searcher.categorize(vector, cues)
    result = searcher.search_vector(vector, 20, "blend", cues)
    scores = [linear_similarity(hit.cosine) * dict(ranking)[hit.category] for hit in result.results]
    assert len(scores) == 20 and scores == sorted(scores, reverse=True)
    assert len({hit.category for hit in result.results}) > 1  # 20 of 24 items: other categories follow
    assert [hit.id for hit in result.results] == searcher.exact_ids(vector, 20, "blend", ranking)
    plain = searcher.search_vector(vector, 20, "all", cues)
    assert [h.cosine for h in plain.results] != [h.cosine for h in result.results]


def test_search_vector_matches_search(index: Path, data_root: Path) -> None:
    searcher = ProductSearcher.load(index)
    query = sorted((data_root / "products" / "milk").glob("*.jpg"))[-1]
    direct = searcher.search(query, top_k=6, scope="all")
    vector, cues = searcher.embed_query(query)
    again = searcher.search_vector(vector, top_k=6, scope="all", cues=cues)
    assert [h.id for h in direct.results] == [h.id for h in again.results]


def test_failed_build_leaves_previous_index_unchanged(index: Path, catalog: Path, monkeypatch) -> None:
    before = folder_digests(index)
    calls = []

    def build_one_then_die(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt("killed half-way")
        calls.append(1)
        real_build_annoy(*args, **kwargs)

    real_build_annoy = annoy_store.build_annoy
    monkeypatch.setattr(annoy_store, "build_annoy", build_one_then_die)
    with pytest.raises(KeyboardInterrupt):
        build_index(catalog, index, trees=8, **FAST)
    assert folder_digests(index) == before
    assert not list(index.parent.glob(f".{index.name}.building-*"))
    assert len(ProductSearcher.load(index).index.rows) == len(CATEGORIES) * PER_CATEGORY


def test_an_unknown_head_model_fails_before_any_photo_is_embedded(
    catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build_module, "embed_catalog", lambda *args, **kwargs: pytest.fail("embedded first"))
    with pytest.raises(UnknownModelError, match="nosuchmodel"):
        build_index(catalog, tmp_path / "index", head_model="nosuchmodel", **FAST)
    assert not (tmp_path / "index").exists()


def test_update_embeds_the_head_views_again_when_their_file_is_damaged(
    index: Path, catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    (copy / HEAD_VIEWS).write_bytes(b"damaged")
    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path / "empty-cache"))  # nothing from the cache either
    with caplog.at_level(logging.WARNING):
        report = build_index(catalog, copy, update=True, show_bar=False)
    assert "head views cannot be read" in caplog.text
    assert report["head_view"] == json.loads((index / "manifest.json").read_text())["head_view"]
    original, again = read_head_views(index), read_head_views(copy)
    assert again.keys() == original.keys()
    for item_id, view in original.items():
        np.testing.assert_allclose(again[item_id], view, atol=1e-5)


def test_swap_interrupted_between_renames_still_loads(index: Path, tmp_path: Path) -> None:
    out = tmp_path / "index"
    shutil.copytree(index, backup_dir(out))  # the old index parked, the new one not yet renamed in
    assert len(ProductSearcher.load(out).index.rows) == len(CATEGORIES) * PER_CATEGORY


def test_missing_and_corrupt_indexes_raise_specific_errors(index: Path, tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError, match="no product index"):
        ProductSearcher.load(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(index, broken)
    (broken / "annoy" / "1.ann").write_bytes(b"")
    with pytest.raises(IndexCorruptError, match=r"1\.ann is 0 bytes where the build wrote \d+"):
        ProductSearcher.load(broken)
    (broken / "annoy" / "vectors.npy").unlink()
    with pytest.raises(IndexCorruptError, match=r"annoy store .* damaged or incomplete: vectors\.npy is missing"):
        ProductSearcher.load(broken)
    (broken / "catalog.sqlite").unlink()
    with pytest.raises(IndexCorruptError, match=r"catalog\.sqlite is missing"):
        ProductSearcher.load(broken)
    (broken / "manifest.json").write_text("{ not json")
    with pytest.raises(IndexCorruptError, match="not JSON"):
        ProductSearcher.load(broken)
    assert issubclass(IndexCorruptError, ValueError) and issubclass(IndexMissingError, FileNotFoundError)


def test_cli_search_json(index: Path, data_root: Path, capsys) -> None:
    query = sorted((data_root / "products" / "sunglasses").glob("*.jpg"))[-1]
    assert cli.main(["search", "--index", str(index), str(query), "--top-k", "7", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {"model", "categories", "results", "timings_ms"} <= set(payload)
    assert set(payload["categories"][0]) == {"label", "prob"}
    assert len(payload["results"]) == 7
    hit_keys = {"rank", "photo", "category", "product_id", "title", "price", "url", "similarity", "cosine",
                "distance", "inliers", "shared_words"}
    assert set(payload["results"][0]) == hit_keys
    assert payload["results"][0]["photo"].startswith("sunglasses/")  # relative to the catalog, not the server


def test_cli_search_missing_index_is_one_line_error(tmp_path: Path, data_root: Path, capsys) -> None:
    query = sorted((data_root / "products" / "sunglasses").glob("*.jpg"))[0]
    assert cli.main(["search", "--index", str(tmp_path / "none"), str(query)]) == 2
    assert "no product index" in capsys.readouterr().err


def test_cli_eval_products_json(index: Path, queries: Path, capsys) -> None:
    assert cli.main(["eval-products", "--index", str(index), "--queries", str(queries), "--top-k", "5",
                     "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    keys = {"queries", "top1_accuracy", "precision_at_10", "map_at_30", "ann_recall_at_30",
            "latency_ms_p50", "latency_ms_p95"}
    assert keys <= set(report) and report["queries"] == len(CATEGORIES) * QUERIES
    assert report["ann_recall_at_30"] == 1.0


def test_split_manifests_build_and_product_recall(
    catalog: Path, data_root: Path, tmp_path: Path, capsys
) -> None:
    shared = data_root / "products_manifest.csv"
    assert cli.main(["split-catalog", str(catalog), "--metadata", str(shared), "--out", str(tmp_path),
                     "--json"]) == 0
    split = json.loads(capsys.readouterr().out)
    files = [p for p in catalog.rglob("*") if p.is_file()]
    assert split["catalog_items"] + split["query_items"] == len(files)
    assert abs(split["catalog_items"] - split["query_items"]) <= len(CATEGORIES)  # half of each category
    again = tmp_path / "again"
    cli.main(["split-catalog", str(catalog), "--metadata", str(shared), "--out", str(again)])
    assert from_manifest(again / "catalog.csv") == from_manifest(tmp_path / "catalog.csv")
    build_index(catalog, tmp_path / "index", manifest=tmp_path / "catalog.csv", trees=4, **FAST)
    capsys.readouterr()
    assert cli.main(["eval-products", "--index", str(tmp_path / "index"), "--queries-manifest",
                     str(tmp_path / "queries.csv"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["product_recall_at_1"] <= report["product_recall_at_10"] <= 1.0
    assert report["product_queries"] > 0
    assert np.isfinite(report["map_at_30"])


def test_neighbour_vote_is_recorded_and_blended_into_the_ranking(index: Path, data_root: Path) -> None:
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["neighbour_vote"] == {"k": 5, "temperature": 0.05, "weight": 0.2}
    assert 0.0 <= manifest["head"]["held_out_head_only_accuracy"] <= 1.0
    voting = ProductSearcher.load(index)
    head_only = ProductSearcher.load(index)
    head_only.parts["neighbour_vote"].settings = NeighbourVote(weight=0.0)
    vector, cues = voting.embed_query(sorted((data_root / "products" / "milk").glob("*.jpg"))[-1])
    blended, plain = dict(voting.categorize(vector, cues)), dict(head_only.categorize(vector, cues))
    assert sum(blended.values()) == pytest.approx(1.0) and set(blended) == set(CATEGORIES)
    assert blended != plain  # the five nearest catalog photos moved the probabilities


def test_neighbour_vote_blend() -> None:
    head = np.array([[0.55, 0.45, 0.0]])
    vote = NeighbourVote(k=3, temperature=0.05, weight=0.5)
    # three close neighbours of class 1 outvote a head that narrowly prefers class 0
    blended = vote.blend(head, np.array([[0.9, 0.89, 0.5]]), np.array([[1, 1, 0]]))
    assert blended.argmax() == 1 and blended.sum() == pytest.approx(1.0)
    assert np.array_equal(NeighbourVote(weight=0.0).blend(head, np.array([[0.9]]), np.array([[1]])), head)
