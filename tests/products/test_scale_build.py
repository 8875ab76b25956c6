"""Indexes in Milvus Lite, incremental updates and the Ray Data build, all run for real (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lookalike.products import plan as plan_module
from lookalike.products.build import build_index
from lookalike.products.parts import thumbnails as thumbnails_part
from lookalike.products.search import ProductSearcher
from lookalike.vectors.stores.milvus_store import connect, disconnect

CATEGORIES = ("milk", "sunglasses", "watches")
FAST = {"fast": True, "size": 160, "flip": False, "show_bar": False, "trees": 4}


def _catalog(data_root: Path, root: Path, first: int, last: int) -> Path:
    """Photos first..last-1 of each category, symlinked."""
    for category in CATEGORIES:
        (root / category).mkdir(parents=True, exist_ok=True)
        for photo in sorted((data_root / "products" / category).glob("*.jpg"))[first:last]:
            (root / category / photo.name).symlink_to(photo)
    return root


def _vectors_by_path(index: Path) -> dict[str, np.ndarray]:
    searcher = ProductSearcher.load(index)
    rows = list(searcher.index.rows)
    _, vectors = searcher.index.store.vectors([row["id"] for row in rows])
    searcher.index.close()
    return {row["path"]: vector for row, vector in zip(rows, vectors, strict=True)}


def _top_ids(index: Path, queries: list[Path], k: int, scope: str = "all") -> list[list[str]]:
    searcher = ProductSearcher.load(index)
    try:
        return [[hit.path for hit in searcher.search(q, k, scope).results] for q in queries]
    finally:
        searcher.index.close()


@pytest.fixture(scope="module")
def catalog(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _catalog(data_root, tmp_path_factory.mktemp("catalog"), 0, 8)


@pytest.fixture(scope="module")
def query_photos(data_root: Path) -> list[Path]:
    return [sorted((data_root / "products" / category).glob("*.jpg"))[9] for category in CATEGORIES]


@pytest.fixture(scope="module")
def annoy_index(catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("annoy") / "index"
    build_index(catalog, out, **FAST)
    return out


def test_milvus_lite_index_is_found_from_the_manifest_and_answers_like_annoy(
    catalog: Path, annoy_index: Path, query_photos: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "index"
    report = build_index(catalog, out, store="milvus", **FAST)
    assert report["store"]["kind"] == "milvus" and report["store"]["uri"] is None
    assert (out / "milvus" / "vectors.db").exists() and not (out / "annoy").exists()
    for scope in ("all", "category"):
        assert _top_ids(out, query_photos, 10, scope) == _top_ids(annoy_index, query_photos, 10, scope)
    first = ProductSearcher.load(out)
    second = ProductSearcher.load(annoy_index)
    a, b = first.search(query_photos[0], 5), second.search(query_photos[0], 5)
    assert [h.similarity for h in a.results] == pytest.approx([h.similarity for h in b.results], abs=1e-5)
    assert [c for c, _ in a.categories] == [c for c, _ in b.categories]
    first.index.close()


def test_external_milvus_collections_are_replaced_and_failed_builds_leave_none(
    catalog: Path, query_photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database, out = tmp_path / "shared.db", tmp_path / "index"
    client = connect(str(database))  # in-process users share the file's server through connect()
    first = build_index(catalog, out, store=f"milvus://{database}", **FAST)
    second = build_index(catalog, out, store=f"milvus://{database}", **FAST)
    assert client.list_collections() == [second["store"]["collection"]] != [first["store"]["collection"]]

    def die(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing thumbnails")

    monkeypatch.setattr(thumbnails_part, "write_thumbnails", die)
    with pytest.raises(KeyboardInterrupt):
        build_index(catalog, out, store=f"milvus://{database}", **FAST)
    assert client.list_collections() == [second["store"]["collection"]]
    assert json.loads((out / "manifest.json").read_text())["store"]["collection"] == second["store"]["collection"]
    assert len(_top_ids(out, query_photos, 5)[0]) == 5
    disconnect(client, str(database))


@pytest.mark.parametrize("store", ["annoy", "milvus"])
def test_update_embeds_only_new_photos_and_matches_a_fresh_build(
    store: str, data_root: Path, query_photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "index"
    old = _catalog(data_root, tmp_path / "old", 0, 6)
    build_index(old, out, store=store, **FAST)
    before = {row["path"]: row["id"] for row in ProductSearcher.load(out).index.rows}
    new = _catalog(data_root, tmp_path / "new", 2, 8)  # photos 0-1 deleted, 6-7 added in each category

    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path / "empty-cache"))  # nothing may come from the cache
    embedded: list[Path] = []
    local_engine = plan_module.local_engine

    def counting(jobs, embedder, step):
        embedded.extend(path for _, path in jobs)
        yield from local_engine(jobs, embedder, step)

    monkeypatch.setattr(plan_module, "local_engine", counting)
    report = build_index(new, out, update=True, **FAST)
    assert report["update"] == {"kept": 12, "added": 6, "removed": 6}
    assert report["store"]["kind"] == store  # the update kept the index's store
    folders = [data_root / "products" / category for category in CATEGORIES]
    added = {photo for folder in folders for photo in sorted(folder.glob("*.jpg"))[6:8]}
    assert set(embedded) == {photo.resolve() for photo in added}
    after = {row["path"]: row["id"] for row in ProductSearcher.load(out).index.rows}
    kept = before.keys() & after.keys()
    assert len(kept) == 12 and all(before[path] == after[path] for path in kept)  # kept items keep their ids
    assert min(after[path] for path in after.keys() - kept) > max(before.values())

    monkeypatch.setattr(plan_module, "local_engine", local_engine)
    fresh = tmp_path / "fresh"
    build_index(new, fresh, store=store, **FAST)
    updated, rebuilt = _vectors_by_path(out), _vectors_by_path(fresh)
    assert updated.keys() == rebuilt.keys()
    for path, vector in rebuilt.items():
        np.testing.assert_allclose(updated[path], vector, atol=1e-5)
    assert _top_ids(out, query_photos, 10) == _top_ids(fresh, query_photos, 10)


def test_ray_build_embeds_like_the_local_build(catalog: Path, annoy_index: Path, query_photos: list[Path],
                                               tmp_path: Path) -> None:
    out = tmp_path / "ray-index"
    report = build_index(catalog, out, engine="ray", store="milvus", **FAST)
    assert report["engine"] == "ray" and report["items"] == len(CATEGORIES) * 8
    local, distributed = _vectors_by_path(annoy_index), _vectors_by_path(out)
    assert local.keys() == distributed.keys()
    for path, vector in local.items():
        np.testing.assert_allclose(distributed[path], vector, atol=1e-5)
    overlap = [len(set(a) & set(b)) / len(a) for a, b in
               zip(_top_ids(annoy_index, query_photos, 20), _top_ids(out, query_photos, 20), strict=True)]
    assert min(overlap) >= 0.9


def test_cli_build_into_milvus_then_update(catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lookalike.cli import main as cli

    out = str(tmp_path / "index")
    fast = ["--size", "160", "--no-flip", "--trees", "4", "--json"]
    assert cli.main(["build", str(catalog), "--out", out, "--store", "milvus", *fast]) == 0
    assert json.loads(capsys.readouterr().out)["store"]["kind"] == "milvus"
    assert cli.main(["build", str(catalog), "--out", out, "--update", *fast]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["update"] == {"kept": 24, "added": 0, "removed": 0} and report["store"]["kind"] == "milvus"
    assert cli.main(["build", str(catalog), "--out", out, "--store", "faiss", *fast]) == 2
    assert "unknown store 'faiss'" in capsys.readouterr().err
