"""train-head end to end on a tiny generated catalog: report files, and the winner installed into an index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.products.build import build_index
from lookalike.products.heads import NeighbourVote
from lookalike.products.index import load_index
from lookalike.products.mlp_head import load_head
from lookalike.products.search import ProductSearcher
from lookalike.training.head import train_head
from model_zoo.product_preprocess import Preprocess
from tests.products.tiny_index import COLOURS, ColourEmbedder, colour_photos


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return colour_photos(tmp_path_factory.mktemp("catalog"), 20)


def test_train_head_writes_the_report_and_installs_a_head_search_uses(catalog: Path, tmp_path: Path) -> None:
    embedder = ColourEmbedder()
    index_dir = tmp_path / "index"
    build_index(catalog, index_dir, embedder=embedder, trees=2, show_bar=False)
    out = tmp_path / "report"
    result = train_head(
        catalog,
        out,
        embedder=embedder,
        architectures=["linear"],
        max_epochs=15,
        install=index_dir,
        force=True,
    )
    for name in (
        "grid.md",
        "grid.csv",
        "best_per_architecture.md",
        "per_class.csv",
        "confusion.png",
        "curves.png",
        "head.npz",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    assert "| linear | adam | 0.01 |" in (out / "grid.md").read_text()
    assert result["best"]["test_acc"] >= 0.8
    assert json.loads((out / "summary.json").read_text())["baseline_test_acc"] == result["baseline_test_acc"]

    manifest = json.loads((index_dir / "manifest.json").read_text())
    assert manifest["head"]["kind"] == "train-head"
    assert manifest["head"]["replaced"]["kind"] == "logistic_regression"
    assert "view" in manifest["head"]["replaced"] and "view" not in manifest["head"]  # it reads the index's vectors
    installed = load_head(out / "head.npz")
    searcher = ProductSearcher(load_index(index_dir), embedder)
    assert searcher.part("head_view") is None
    searcher.parts["neighbour_vote"].settings = NeighbourVote(weight=0.0)  # the installed head's own probabilities
    vector = embedder.embed([Image.new("RGB", (8, 8), COLOURS["green"])])[0]
    categories = searcher.search_vector(vector, top_k=5).categories
    assert categories[0][0] == "green"
    assert categories[0][1] == pytest.approx(installed.rank(vector)[0][1], abs=1e-6)


def _tunable_embedder():
    """A tiny timm EfficientNet (untrained, seeded) as a product embedder: tunable like the Lite defaults, so a
    default build tunes it in seconds, and `create_embedder` rebuilds it from the index's manifest."""
    import timm
    import torch

    from model_zoo.product_embedders import ProductEmbedder

    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", pretrained=False)
    data = timm.data.resolve_model_data_config(model)
    return ProductEmbedder("test_efficientnet", model, Preprocess(32, tuple(data["mean"]), tuple(data["std"])),
                           flip=False, backend="torch")


def test_train_head_installs_into_an_index_with_a_tuned_backbone(
    catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default build tunes the backbone and keeps it in the index; `train-head --install` (no --model) trains
    on the features of that tuned backbone and installs, and search ranks categories with the installed head."""
    from lookalike.cli import main as cli
    from lookalike.products.index import TUNED_BACKBONE

    monkeypatch.setenv("LOOKALIKE_BACKEND", "torch")  # no ONNX export of a throw-away model
    index_dir = tmp_path / "index"
    report = build_index(catalog, index_dir, embedder=_tunable_embedder(), trees=2, show_bar=False)
    assert report["tuning"]["photos"] == 60 and (index_dir / TUNED_BACKBONE).is_file()
    out = tmp_path / "report"
    assert cli.main(["train-head", "--catalog", str(catalog), "--install", str(index_dir), "--heads", "linear",
                     "--epochs", "10", "--force", "--out", str(out), "--json"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["weights"] == str((index_dir / TUNED_BACKBONE).resolve())  # the tuned features
    manifest = json.loads((index_dir / "manifest.json").read_text())
    assert manifest["head"]["kind"] == "train-head" and manifest["tuning"] == report["tuning"]

    installed = load_head(out / "head.npz")
    searcher = ProductSearcher.load(index_dir)
    assert searcher.embedder.weights == str((index_dir / TUNED_BACKBONE).resolve())
    searcher.parts["neighbour_vote"].settings = NeighbourVote(weight=0.0)  # the installed head's own probabilities
    vector = searcher.embedder.embed([Image.new("RGB", (24, 24), COLOURS["green"])])[0]
    categories = dict(searcher.search_vector(vector, top_k=5).categories)
    assert categories == pytest.approx(dict(installed.rank(vector)), abs=1e-6)
    searcher.close()


def test_install_refuses_a_head_trained_on_other_features(catalog: Path, tmp_path: Path) -> None:
    from lookalike.training.head_install import install_head

    embedder = ColourEmbedder()
    index_dir = tmp_path / "index"
    build_index(catalog, index_dir, embedder=embedder, trees=2, show_bar=False)
    before = (index_dir / "head.npz").read_bytes()
    other = {**embedder.config, "size": 32}
    with pytest.raises(ValueError, match="trained on"):
        install_head(index_dir / "head.npz", index_dir, other, {})
    assert (index_dir / "head.npz").read_bytes() == before


def test_finetune_trains_backbone_and_head_on_augmented_photos(catalog: Path) -> None:
    """The --finetune path (GPU in use) exercised on CPU with a tiny untrained timm backbone."""
    import timm

    from lookalike.products.catalog import read_catalog
    from lookalike.products.splits import stratified_split
    from lookalike.training.finetune import finetune
    from model_zoo.product_embedders import ProductEmbedder

    backbone = timm.create_model("test_efficientnet", pretrained=False)
    embedder = ProductEmbedder("tiny", backbone, Preprocess(32, (0.5,) * 3, (0.5,) * 3), flip=False)
    before = [p.detach().clone() for p in backbone.parameters()]
    items = read_catalog(catalog)
    labels = np.array([sorted(COLOURS).index(item.category) for item in items])
    result = finetune(
        [i.path for i in items],
        labels,
        stratified_split(labels),
        embedder,
        "linear",
        "cpu",
        lr=1e-3,
        max_epochs=2,
        batch_size=16,
        workers=0,
    )
    assert result.architecture == "finetuned+linear" and result.stop_epoch == 2
    assert len(result.history["val_acc"]) == 2 and 0.0 <= result.test_acc <= 1.0
    assert all(
        torch_equal(a, b) for a, b in zip(before, backbone.parameters(), strict=True)
    )  # a copy is tuned
    tuned = list(result.head.backbone.parameters())
    assert not all(torch_equal(a, b) for a, b in zip(before, tuned, strict=True))


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b.detach()))
