"""The default build tunes the backbone on the catalog and keeps it in the index; updates reuse it."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import numpy as np
import pytest

from lookalike.images.loading import load_image
from lookalike.products.build import build_index
from lookalike.products.catalog import CatalogItem
from lookalike.products.index import TUNED_BACKBONE, IndexManifest
from lookalike.products.search import ProductSearcher
from lookalike.products.spatial import count_inliers, extract, matched_points
from lookalike.products.tuning import (
    BUILD_EPOCHS,
    MIN_PHOTOS_PER_CATEGORY,
    MIN_TUNED_SHARE,
    TuneConfig,
    decide,
    retune_reason,
)
from tests.products.tiny_index import ColourEmbedder, folder_digests


def _items(per_category: int, categories: int = 3) -> list[CatalogItem]:
    return [CatalogItem(Path(f"{c}/{i}.jpg"), f"c{c}") for c in range(categories) for i in range(per_category)]


def test_the_rule_tunes_catalogs_with_enough_photos_a_category() -> None:
    assert decide(_items(MIN_PHOTOS_PER_CATEGORY)).tune
    small = decide(_items(MIN_PHOTOS_PER_CATEGORY - 1))
    assert not small.tune and "--tune always" in small.reason
    assert decide(_items(2), "always").tune and not decide(_items(50), "never").tune
    assert not decide(_items(50, categories=1)).tune
    with pytest.raises(ValueError, match="two categories"):
        decide(_items(50, categories=1), "always")
    with pytest.raises(ValueError, match="tuning must be one of"):
        decide(_items(5), "sometimes")


def test_an_update_tunes_again_for_a_new_category_or_a_catalog_grown_past_the_tuning() -> None:
    tuning = {"photos": 30, "category_names": ["c0", "c1", "c2"]}
    assert retune_reason(_items(10), tuning) is None
    assert "c3" in retune_reason(_items(10, categories=4), tuning)
    grown = int(30 / MIN_TUNED_SHARE) // 3 + 2
    assert "in the tuning" in retune_reason(_items(grown), tuning)


def test_a_model_that_cannot_be_tuned_builds_frozen(tiny_catalog: Path, tmp_path: Path) -> None:
    report = build_index(tiny_catalog, tmp_path / "idx", embedder=ColourEmbedder(), show_bar=False, tune="auto")
    assert "tuning" not in report
    with pytest.raises(ValueError, match="cannot be tuned"):
        build_index(tiny_catalog, tmp_path / "idx2", embedder=ColourEmbedder(), show_bar=False, tune="always")


def _shop(root: Path, data_root: Path, categories: tuple[str, ...], count: int, skip: int = 0) -> Path:
    for category in categories:
        (root / category).mkdir(parents=True, exist_ok=True)
        for photo in sorted((data_root / "products" / category).iterdir())[skip : skip + count]:
            shutil.copy(photo, root / category / photo.name)
    return root


def test_the_default_build_tunes_stores_the_backbone_and_updates_reuse_it(data_root: Path, tmp_path: Path) -> None:
    catalog = _shop(tmp_path / "shop", data_root, ("milk", "juice", "shirt"), MIN_PHOTOS_PER_CATEGORY)
    out = tmp_path / "idx"
    report = build_index(catalog, out, show_bar=False)
    assert report["tuning"]["photos"] == 3 * MIN_PHOTOS_PER_CATEGORY and (out / TUNED_BACKBONE).is_file()
    assert report["local_features"] and "view" not in report["head"]  # keypoints on; no second view when tuned
    assert report["embedder"]["weights"] is None  # the index's own backbone, wherever the index moves

    moved = tmp_path / "moved"
    shutil.move(out, moved)
    searcher = ProductSearcher.load(moved)
    assert searcher.embedder.weights == str((moved / TUNED_BACKBONE).resolve())
    photo = sorted((catalog / "milk").iterdir())[0]
    result = searcher.search(photo, top_k=3, scope="all")
    # the photo itself first; below 1 since a query is embedded without the mirror image the catalog averages in
    assert result.results[0].catalog_path == f"milk/{photo.name}" and result.results[0].cosine > 0.95
    assert result.results[0].inliers and result.results[0].inliers > 20  # the same photo, verified

    explanation = searcher.explain(photo, result.results[0].id)
    assert explanation.inliers == result.results[0].inliers
    width, height = load_image(photo).size
    assert (explanation.query_points <= [width, height]).all() and (explanation.catalog_points >= 0).all()
    picture = explanation.picture(load_image(photo), searcher.catalog_photo(result.results[0].id))
    assert picture.height == 360 and picture.width > 360
    searcher.close()

    before = tmp_path / "backbone_before.pt"
    shutil.copy(moved / TUNED_BACKBONE, before)
    _shop(catalog, data_root, ("milk",), 2, skip=MIN_PHOTOS_PER_CATEGORY)
    kept = build_index(catalog, moved, show_bar=False, update=True)
    assert kept["update"]["added"] == 2 and kept["tuning"] == report["tuning"]
    assert filecmp.cmp(moved / TUNED_BACKBONE, before, shallow=False)
    assert IndexManifest.read(moved).tuning == report["tuning"]

    _shop(catalog, data_root, ("hat",), MIN_PHOTOS_PER_CATEGORY)
    again = build_index(catalog, moved, show_bar=False, update=True)
    assert again["tuning"]["reason"].startswith("tuned again: new categories")
    assert again["tuning"]["photos"] == 4 * MIN_PHOTOS_PER_CATEGORY + 2


def test_a_tuning_interrupted_mid_way_leaves_the_index_in_use_untouched(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lookalike.products import backbone_tuning

    catalog = _shop(tmp_path / "shop", data_root, ("milk", "shirt"), MIN_PHOTOS_PER_CATEGORY)
    out = tmp_path / "idx"
    build_index(catalog, out, show_bar=False, fast=True, head_model="none")
    before = folder_digests(out)
    real = backbone_tuning.train_tail

    def interrupted(*args, **kwargs):
        def stop(epoch: int, tail) -> None:
            raise KeyboardInterrupt  # Ctrl-C after the first epoch
        return real(*args, **{**kwargs, "on_epoch": stop})

    monkeypatch.setattr(backbone_tuning, "train_tail", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_index(catalog, out, show_bar=False)
    assert folder_digests(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "shop"]  # nothing half-written beside it
    searcher = ProductSearcher.load(out)
    assert searcher.search(sorted((catalog / "milk").iterdir())[0], top_k=1).results[0].category == "milk"
    searcher.close()


def test_train_embedding_tunes_through_the_build_s_orchestrator_with_its_defaults(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train-embedding --tune-blocks` without --epochs / --lr runs `tune_catalog`, as the build does, with the
    build's settings (BUILD_EPOCHS epochs), not a default of its own."""
    from lookalike.cli import main as cli
    from lookalike.products import tuning

    class Stop(Exception):
        pass

    asked: list[TuneConfig | None] = []

    def recorded(items, embedder, reason, config=None, device=None, progress=None):
        asked.append(config)
        raise Stop

    monkeypatch.setattr(tuning, "tune_catalog", recorded)
    catalog = _shop(tmp_path / "shop", data_root, ("milk", "shirt"), 2)
    with pytest.raises(Stop):
        cli.main(["train-embedding", "--data", str(catalog), "--tune-blocks", "2", "--device", "cpu",
                  "--out", str(tmp_path / "tuned")])
    assert asked == [TuneConfig()] and asked[0].epochs == BUILD_EPOCHS == 2


def test_fast_builds_the_frozen_pipeline(data_root: Path, tmp_path: Path) -> None:
    catalog = _shop(tmp_path / "shop", data_root, ("milk", "shirt"), MIN_PHOTOS_PER_CATEGORY)
    report = build_index(catalog, tmp_path / "idx", show_bar=False, fast=True, head_model="none")
    assert "tuning" not in report and "local_features" not in report
    assert not (tmp_path / "idx" / TUNED_BACKBONE).exists()


def test_matched_points_are_the_inliers_counted(data_root: Path) -> None:
    photos = sorted((data_root / "products" / "milk").iterdir())[:2]
    first, second = (extract(load_image(p)) for p in photos)
    query_points, catalog_points = matched_points(first, second)
    assert len(query_points) == len(catalog_points) == count_inliers(first, second)
    assert np.isfinite(query_points).all()
