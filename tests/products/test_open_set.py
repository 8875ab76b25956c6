"""The in-catalog decision (`products.open_set`, `parts.open_set`): fitted at build by leaving each category
out, on every search as `in_catalog` / `in_catalog_score`, scaling a flagged query's similarity, evaluated by
`eval-products --unknown-queries`; old indexes load without it and an update adds it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.cli.main import main
from lookalike.presentation import NOT_IN_CATALOG
from lookalike.products import open_set
from lookalike.products.build import build_index
from lookalike.products.errors import IndexCorruptError
from lookalike.products.parts.open_set import FILE
from lookalike.products.search import ProductSearcher
from tests.products.tiny_index import ColourEmbedder, build_tiny, colour_photos


def _photo(path: Path, colour: tuple[int, int, int], seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.asarray(colour) + rng.normal(0, 50, (24, 24, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _blobs(categories: int, per: int, dim: int = 16, spread: float = 0.15, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(categories, dim))
    vectors = np.repeat(centres, per, 0) + spread * rng.normal(size=(categories * per, dim)) * np.linalg.norm(
        centres, axis=1).repeat(per)[:, None]
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), [f"c{i}" for i in range(categories) for _ in
                                                                         range(per)]


def test_a_left_out_kind_scores_low_and_the_threshold_keeps_known_queries() -> None:
    vectors, labels = _blobs(8, 30)
    spread, decision = open_set.fit(vectors[30:], labels[30:])  # c0 is not in the catalog
    assert decision.kind == "loco" and decision.report["unknown_queries"] == 210
    assert all(w >= 0 for w in decision.weights)  # closer never reads less in the catalog
    fresh, fresh_labels = _blobs(8, 30, seed=0)
    catalog = vectors[30:]
    top1 = (fresh @ catalog.T).max(1)
    score = decision.score(open_set.query_features(spread, top1, fresh))
    unknown = np.asarray(fresh_labels) == "c0"
    assert score[unknown].max() < score[~unknown].min()
    assert (score[unknown] < decision.threshold).all()
    assert (score[~unknown] < decision.threshold).mean() <= 0.05


def test_one_category_gets_the_one_class_rule_and_tiny_catalogs_none() -> None:
    vectors, labels = _blobs(2, 20)
    spread, decision = open_set.fit(vectors[:20], labels[:20])
    assert decision.kind == "one-class" and decision.threshold == 0.5
    features = open_set.query_features(spread, (vectors @ vectors[:20].T).max(1), vectors)
    top = np.sort(vectors[:20] @ vectors[:20].T, 1)[:, -2]  # a catalog photo's nearest other one
    assert (decision.score(features[20:]) < 0.5).all()  # the other kind is far below the catalog's own spread
    assert (decision.score(open_set.query_features(spread, top, vectors[:20])) >= 0.5).mean() >= 0.9
    assert open_set.fit(vectors[:2], labels[:2]) is None


def test_every_search_says_whether_the_catalog_has_its_kind(tiny_index: Path, tmp_path: Path) -> None:
    searcher = ProductSearcher.load(tiny_index, ColourEmbedder())
    entry = json.loads((tiny_index / "manifest.json").read_text())["open_set"]
    assert entry["kind"] == "loco" and entry["fit"]["categories"] == 3
    known = sorted(colour_photos(tmp_path / "known", 2, start=100, seed=7).rglob("*.png"))
    unknown = [_photo(tmp_path / f"{name}.png", colour) for name, colour in
               {"grey": (128, 128, 128), "black": (10, 10, 10)}.items()]
    found = {path: searcher.search(path, top_k=5, scope="all") for path in known + unknown}
    assert all(found[path].in_catalog is True for path in known)
    assert all(found[path].in_catalog is False for path in unknown)
    assert max(found[p].in_catalog_score for p in unknown) < min(found[p].in_catalog_score for p in known)
    summary = found[unknown[0]].summary()
    assert summary["in_catalog"] is False and summary["in_catalog_score"] == found[unknown[0]].in_catalog_score
    # a flagged query's hits read no higher than score / threshold of their calibrated similarity
    plain = searcher.part("similarity")
    gate = found[unknown[0]].in_catalog_score / entry["threshold"]
    assert all(hit.similarity <= plain.score(hit.cosine, hit.category) * gate + 1e-4
               for hit in found[unknown[0]].results)
    assert all(hit.similarity == plain.score(hit.cosine, hit.category) for hit in found[known[0]].results)
    searcher.close()


def test_the_cli_says_nothing_like_this(tiny_index: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    load = ProductSearcher.load
    monkeypatch.setattr("lookalike.cli.products.ProductSearcher.load", lambda index: load(index, ColourEmbedder()))
    grey = _photo(tmp_path / "grey.png", (128, 128, 128))
    assert main(["search", "--index", str(tiny_index), str(grey)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == NOT_IN_CATALOG and "(not confident)" in text
    red = next(colour_photos(tmp_path / "q", 1, start=50).rglob("red/*.png"))
    assert main(["search", "--index", str(tiny_index), str(red)]) == 0
    assert NOT_IN_CATALOG not in capsys.readouterr().out


def test_an_update_adds_it_to_an_index_without_it(tiny_catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "old"
    build_tiny(tiny_catalog, out)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["open_set"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / FILE).unlink()
    searcher = ProductSearcher.load(out, ColourEmbedder())
    result = searcher.search(next(tiny_catalog.rglob("*.png")), top_k=3)
    assert searcher.part("open_set") is None and (result.in_catalog, result.in_catalog_score) == (None, None)
    searcher.close()
    build_tiny(tiny_catalog, out, update=True)
    assert json.loads((out / "manifest.json").read_text())["open_set"]["kind"] == "loco"


def test_a_damaged_file_names_itself(tiny_index: Path) -> None:
    (tiny_index / FILE).write_bytes(b"not an npz")
    with pytest.raises(IndexCorruptError, match=r"open_set\.npz"):
        ProductSearcher.load(tiny_index, ColourEmbedder())


def test_eval_scores_unknown_queries(tiny_index: Path, tmp_path: Path) -> None:
    from lookalike.evaluation.products import evaluate
    from lookalike.products.catalog import read_catalog

    known = read_catalog(colour_photos(tmp_path / "known", 3, start=100, seed=3))
    manifest = tmp_path / "unknown.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "category"])
        for i, colour in enumerate([(128, 128, 128), (10, 10, 10), (250, 250, 250)]):
            writer.writerow([str(_photo(tmp_path / "unknown" / f"{i}.png", colour, seed=i)), "other"])
    report = evaluate(ProductSearcher.load(tiny_index, ColourEmbedder()), known, top_k=5, latency_queries=2,
                      show_bar=False, unknown=read_catalog(manifest))
    assert report["unknown_queries"] == 3 and report["in_catalog_auroc"] == 1.0
    assert report["unknown_flagged"] == 1.0 and report["known_flagged"] == 0.0
    assert report["known_flagged_se"] == 0.0 and report["in_catalog_auroc_se"] >= 0.0
    assert report["unknown_top_similarity_median"] < report["known_top_similarity_median"]


def test_auroc_and_its_standard_error() -> None:
    from lookalike.evaluation.open_set import auroc_with_se

    auc, se = auroc_with_se(np.asarray([0.9, 0.8, 0.4]), np.asarray([0.5, 0.1]))
    assert auc == pytest.approx(5 / 6) and 0 < se < 0.5


def test_the_product_tab_says_it_above_the_gallery_and_marks_the_ranking(tiny_index: Path, tmp_path: Path) -> None:
    from lookalike.app.products import _results

    searcher = ProductSearcher.load(tiny_index, ColourEmbedder())
    for colour, unknown in [((128, 128, 128), True), ((200, 40, 40), False)]:
        result = searcher.search(_photo(tmp_path / f"{colour[0]}.png", colour), top_k=4)
        categories, gallery, _, _, _, note = _results(result, (None, None))
        assert len(gallery) == 4  # the closest items still show
        assert (NOT_IN_CATALOG in note) is unknown and ("not confident" in categories.label) is unknown
    searcher.close()


def _classifier(categories: int = 8, dim: int = 16, seed: int = 0) -> open_set.Classifier:
    """A classifier of one class per blob centre of `_blobs(categories, ..., seed)` and 32 random ones."""
    centres = np.random.default_rng(seed).normal(size=(categories, dim))
    rows = np.r_[centres, np.random.default_rng(9).normal(size=(32, dim))]
    rows = 8 * rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return open_set.Classifier(rows.astype(np.float32), np.zeros(len(rows), np.float32))


def test_the_class_profile_cue_has_fixed_weights_and_tells_a_far_kind_apart() -> None:
    vectors, labels = _blobs(8, 30)
    spread, decision = open_set.fit(vectors[30:], labels[30:], classifier=_classifier())
    assert decision.features == open_set.PROFILE_FEATURES and spread.profiles.shape == (7, 40)
    np.testing.assert_allclose(decision.weights / decision.weights[0], open_set.PROFILE_WEIGHTS)
    assert decision.weights[0] > 0  # the fitted slope: closer never reads less in the catalog
    fresh, fresh_labels = _blobs(8, 30, seed=0)
    score = decision.score(open_set.query_features(spread, (fresh @ vectors[30:].T).max(1), fresh))
    unknown = np.asarray(fresh_labels) == "c0"  # its own ImageNet-like class, which no catalog category has
    assert (score[unknown] < decision.threshold).mean() >= 0.9
    assert (score[~unknown] < decision.threshold).mean() <= 0.05
    again = open_set.InCatalog.from_dict(json.loads(json.dumps(decision.to_dict())))
    assert again.features == open_set.PROFILE_FEATURES
    with pytest.raises(ValueError, match="features"):
        open_set.InCatalog.from_dict({**decision.to_dict(), "features": ["top1", "profile"]})


def test_an_embedder_with_a_classifier_keeps_it_in_the_index(tiny_catalog: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(ColourEmbedder.dim, 12)

        def get_classifier(self) -> torch.nn.Module:
            return self.fc

    class WithClassifier(ColourEmbedder):
        model = Model()

    out = tmp_path / "index"
    build_index(tiny_catalog, out, embedder=WithClassifier(), fast=True, trees=2, head_model="none", show_bar=False)
    entry = json.loads((out / "manifest.json").read_text())["open_set"]
    assert entry["features"] == list(open_set.PROFILE_FEATURES)
    searcher = ProductSearcher.load(out, WithClassifier())
    spread = searcher.part("open_set").spread
    np.testing.assert_allclose(spread.classifier.weight, WithClassifier.model.fc.weight.detach().numpy(), atol=1e-3)
    known = next(colour_photos(tmp_path / "q", 1, start=50).rglob("red/*.png"))
    grey = _photo(tmp_path / "grey.png", (128, 128, 128))
    assert searcher.search(known, top_k=3).in_catalog is True
    assert searcher.search(grey, top_k=3).in_catalog_score < searcher.search(known, top_k=3).in_catalog_score
    searcher.close()


def test_fitted_on_queries_embedded_as_search_embeds_them_the_threshold_keeps_its_rate() -> None:
    """Issue 38: the catalog's vectors lie closer to the catalog than a real query does (the mirror image
    averaged in); fitted with them as queries the threshold flags several times KNOWN_FLAGGED of real known
    queries, fitted with the photos as search embeds them (`query_vectors`) about KNOWN_FLAGGED."""
    def noisy(rows: np.ndarray, seed: int) -> np.ndarray:
        rows = rows + 0.12 * np.random.default_rng(seed).normal(size=rows.shape)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    photos, names = _blobs(8, 260)
    shelf = np.arange(len(names)) % 260 < 60
    catalog, labels = photos[shelf], [name for name, kept in zip(names, shelf, strict=True) if kept]
    fresh = noisy(photos[~shelf], 2)  # new photos of the same kinds, as search embeds them
    rates = []
    for asked in (None, noisy(catalog, 1)):
        spread, decision = open_set.fit(catalog, labels, query_vectors=asked)
        score = decision.score(open_set.query_features(spread, (fresh @ catalog.T).max(1), fresh))
        rates.append((score < decision.threshold).mean())
    assert rates[0] > 3 * open_set.KNOWN_FLAGGED and rates[1] < 2 * open_set.KNOWN_FLAGGED
    same = open_set.fit(catalog, labels, query_vectors=catalog)[1]
    assert same.threshold == open_set.fit(catalog, labels)[1].threshold
