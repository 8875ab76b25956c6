"""Triplet mining on a hand-made batch, a tiny training run, and the checkpoint through the model zoo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lookalike.evaluation.face_metrics import auc
from lookalike.training.embedding import cross_validated_distances
from lookalike.training.identity_data import IdentitySet, disjoint_pairs, trainable
from lookalike.training.projection import train_projection
from lookalike.training.settings import TripletConfig
from lookalike.training.triplet import pk_batches, select_triplets, triplet_loss
from model_zoo.projection_head import load_checkpoint, save_checkpoint

# points on a line: identity 0 at 0, 1, 10; identity 1 at 0.5, 2, 4
POSITIONS = torch.tensor([0.0, 1.0, 10.0, 0.5, 2.0, 4.0])
LABELS = torch.tensor([0, 0, 0, 1, 1, 1])


def _line_distances() -> torch.Tensor:
    return (POSITIONS[:, None] - POSITIONS[None, :]).abs()


def test_batch_hard_takes_farthest_positive_and_closest_negative() -> None:
    anchors, positives, negatives = select_triplets(_line_distances(), LABELS, "hard")
    chosen = {int(a): (int(p), int(n)) for a, p, n in zip(anchors, positives, negatives, strict=True)}
    assert chosen[0] == (2, 3)  # from 0: farthest positive 10, closest negative 0.5
    assert chosen[2] == (0, 5)  # from 10: farthest positive 0, closest negative 4
    assert chosen[4] == (5, 1)  # from 2: farthest positive 4, closest negative 1


def test_semi_hard_takes_closest_negative_beyond_the_positive() -> None:
    anchors, positives, negatives = select_triplets(_line_distances(), LABELS, "semi-hard")
    chosen = {(int(a), int(p)): int(n) for a, p, n in zip(anchors, positives, negatives, strict=True)}
    assert len(chosen) == 12  # every ordered (anchor, positive) pair of the same identity
    assert chosen[(0, 1)] == 4  # d_ap = 1: negatives beyond are 2 and 4; closest is 2
    assert chosen[(0, 2)] == 5  # d_ap = 10: none beyond, so the farthest negative (4)
    assert chosen[(3, 4)] == 2  # from 0.5, d_ap = 1.5: only 10 (at 9.5) is beyond; 0 and 1 are closer
    with pytest.raises(ValueError, match="mining"):
        select_triplets(_line_distances(), LABELS, "easy")


def test_triplet_loss_is_the_hinge_on_mined_triplets() -> None:
    embeddings = POSITIONS[:, None].clone()
    loss, active = triplet_loss(embeddings, LABELS, "hard", margin=0.5)
    # batch-hard hinges per anchor, d_ap - d_an + 0.5: 10-0.5, 9-0.5, 10-6, 3.5-0.5, 2-1, 3.5-3
    expected = np.mean([10 - 0.5, 9 - 0.5, 10 - 6, 3.5 - 0.5, 2 - 1, 3.5 - 3]) + 0.5
    assert loss.item() == pytest.approx(expected, abs=1e-3)
    assert active == 1.0


def test_pk_batches_hold_several_photos_of_each_identity() -> None:
    labels = np.repeat(np.arange(10), 5)
    labels = np.append(labels, 99)  # a lone photo never enters a batch
    batches = list(pk_batches(labels, identities=4, per_identity=3, rng=np.random.default_rng(0)))
    seen = np.concatenate(batches)
    assert 99 not in labels[seen]
    assert set(labels[seen]) == set(range(10))
    for batch in batches:
        _, counts = np.unique(labels[batch], return_counts=True)
        assert len(counts) >= 2 and (counts == 3).all()


def _identity_features(identities: int = 40, per: int = 6, dim: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(identities), per)
    nuisance = rng.normal(size=(len(labels), dim)) * 1.5  # shared directions the head learns to drop
    nuisance[:, dim // 2 :] = 0
    signal = np.zeros((identities, dim))
    signal[:, dim // 2 :] = rng.normal(size=(identities, dim - dim // 2))
    features = (signal[labels] + nuisance + 0.3 * rng.normal(size=(len(labels), dim))).astype(np.float32)
    return features / np.linalg.norm(features, axis=1, keepdims=True), labels


@pytest.mark.parametrize("mining", ["hard", "semi-hard"])
def test_tiny_training_reduces_the_loss(mining: str) -> None:
    features, labels = _identity_features()
    config = TripletConfig(mining=mining, epochs=15, identities_per_batch=8, lr=1e-2, lr_step=10)
    trained = train_projection(features, labels, config)
    assert np.mean(trained.loss_history[-3:]) < 0.8 * np.mean(trained.loss_history[:2])
    embedded = trained.head.project(features[:5])
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), config.alpha, rtol=1e-5)


def test_cross_validation_never_trains_on_evaluated_identities(tmp_path: Path) -> None:
    from lookalike.evaluation.report import plot_roc

    features, labels = _identity_features()
    files = [f"id{label}/{i}.jpg" for i, label in enumerate(labels)]
    identities = IdentitySet(Path("."), files, labels, [f"id{i}" for i in range(40)])
    pairs = disjoint_pairs(identities, folds=4, per_fold=40)
    fold_ids = {f: {p.image1.split("/")[0] for p in pairs if p.fold == f} for f in range(1, 5)}
    assert all(not (fold_ids[a] & fold_ids[b]) for a in fold_ids for b in fold_ids if a < b)
    config = TripletConfig(epochs=12, identities_per_batch=8, lr=1e-2)
    dist, log = cross_validated_distances(features, identities, pairs, config)
    assert [entry["train_identities"] for entry in log] == [40 - len(fold_ids[f]) for f in range(1, 5)]
    same = np.array([p.same for p in pairs])
    row = {file: i for i, file in enumerate(files)}
    frozen = np.linalg.norm(
        features[[row[p.image1] for p in pairs]] - features[[row[p.image2] for p in pairs]], axis=1
    )
    assert auc(dist, same) > auc(frozen, same)  # the head learnt to ignore the nuisance directions
    plot_roc({"frozen": (frozen, same), "trained": (dist, same)}, tmp_path / "roc.png")
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"
    assert len(trainable(identities, exclude={0, 1})) == len(files) - 12


def test_checkpoint_loads_as_a_face_model_through_the_zoo(tmp_path: Path) -> None:
    import model_zoo.projected  # noqa: F401  (registers "projected")
    from model_zoo import create_face_model

    backbone = create_face_model("dlib_resnet")
    features, labels = _identity_features(dim=backbone.dim)
    head = train_projection(features, labels, TripletConfig(epochs=1, identities_per_batch=8)).head
    path = save_checkpoint(
        head, tmp_path / "projection.pt", {"kind": "face", "name": "dlib_resnet"}, {"threshold": 7.5}
    )
    model = create_face_model("projected", weights=path)
    assert (model.dim, model.metric, model.threshold, model.alignment) == (128, "euclidean", 7.5, "dlib_chip")
    crop = np.full((150, 150, 3), 128, np.uint8)
    vector = model.embed_faces([crop])
    np.testing.assert_allclose(vector, head.project(backbone.embed_faces([crop])), rtol=1e-5)
    assert load_checkpoint(path)[1]["backbone"]["name"] == "dlib_resnet"


def test_checkpoint_on_product_features_loads_as_a_product_embedder(tmp_path: Path) -> None:
    import model_zoo.projected  # noqa: F401  (registers "projected")
    from model_zoo.product_embedders import create_embedder

    backbone = create_embedder("efficientnet_lite0", flip=False)
    features, labels = _identity_features(dim=backbone.dim)
    head = train_projection(features, labels, TripletConfig(epochs=1, identities_per_batch=8)).head
    path = save_checkpoint(head, tmp_path / "p.pt", {"kind": "product", "name": "efficientnet_lite0"})
    embedder = create_embedder("projected", weights=path, flip=False)
    photo = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    vectors = embedder.embed([photo])
    assert vectors.shape == (1, 128) and embedder.dim == 128
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)  # unit, as the index stores
    np.testing.assert_allclose(vectors, head.project(backbone.embed([photo])) / head.alpha, atol=1e-5)
    rebuilt = create_embedder(**embedder.config)  # how a searcher reopens an index's embedder
    np.testing.assert_allclose(rebuilt.embed([photo]), vectors, atol=1e-5)
    with pytest.raises(Exception, match="not faces"):
        from model_zoo import create_face_model

        create_face_model("projected", weights=path)


def test_identities_from_folders_and_from_a_catalog_manifest(tmp_path: Path) -> None:
    from PIL import Image

    from lookalike.training.identity_data import from_catalog, from_folders

    for person, count in (("Ann", 2), ("Bob", 1)):
        (tmp_path / person).mkdir()
        for i in range(count):
            Image.new("RGB", (4, 4)).save(tmp_path / person / f"{person}_{i + 1:04d}.jpg")
    faces = from_folders(tmp_path)
    assert faces.files == ["Ann/Ann_0001.jpg", "Ann/Ann_0002.jpg", "Bob/Bob_0001.jpg"]
    assert faces.names == ["Ann", "Bob"] and faces.labels.tolist() == [0, 0, 1]
    assert trainable(faces).tolist() == [0, 1]  # Bob has a single photo: never an anchor

    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "file,category,product_id\nAnn/Ann_0001.jpg,a,p1\nAnn/Ann_0002.jpg,a,p1\nBob/Bob_0001.jpg,b,p2\n"
    )
    products = from_catalog(tmp_path, manifest, "product_id")
    assert products.names == ["p1", "p2"] and all(Path(p).is_file() for p in products.paths)
    assert from_catalog(tmp_path, manifest, "category").names == ["a", "b"]


def _tiny_grocery_catalog(data_root: Path, folder: Path) -> tuple[Path, list[list[dict]]]:
    """A manifest of 10 real grocery products x 5 photos (GroceryStore train photos), and its rows by product."""
    import csv

    rows: dict[str, list[dict]] = {}
    with (data_root / "products_manifest.csv").open() as source:
        for row in csv.DictReader(source):
            if row["file"].split("/")[-1].startswith("grocery_train_"):
                rows.setdefault(row["product_id"], []).append(row)
    chosen = [photos[:5] for photos in rows.values() if len(photos) >= 6][:10]
    assert len(chosen) == 10
    manifest = folder / "catalog.csv"
    with manifest.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["file", "category", "product_id"])
        for photos in chosen:
            writer.writerows([row["file"], row["category"], row["product_id"]] for row in photos)
    return manifest, chosen


def test_catalog_fine_tune_round_trip(data_root: Path, tmp_path: Path) -> None:
    """`train-embedding --manifest` on a tiny real catalog (10 grocery products x 5 photos, product ids as
    identities), its checkpoint installed into an index with `--model projected`, and a search on it."""
    import json

    from lookalike.cli import main as cli
    from lookalike.products.build import build_index
    from lookalike.products.search import ProductSearcher

    manifest, chosen = _tiny_grocery_catalog(data_root, tmp_path)
    report_dir = tmp_path / "report"
    assert cli.main(["train-embedding", "--data", str(data_root / "products"), "--manifest", str(manifest),
                     "--backbone", "efficientnet_lite0", "--epochs", "3", "--out", str(report_dir), "--json"]) == 0
    report = json.loads((report_dir / "embedding_result.json").read_text())
    assert report["trainable_identities"] == 10
    assert report["backbone"] == {"kind": "product", "name": "efficientnet_lite0"}
    checkpoint = report_dir / "projection.pt"
    index = tmp_path / "index"
    build_index(data_root / "products", index, manifest=manifest, model="projected", weights=str(checkpoint),
                trees=4, show_bar=False)
    searcher = ProductSearcher.load(index)
    assert searcher.index.manifest.dim == 128 and searcher.index.manifest.embedder["name"] == "projected"
    probe = data_root / "products" / chosen[3][0]["file"]
    result = searcher.search(probe, top_k=5, scope="all")
    assert result.results[0].product_id == chosen[3][0]["product_id"]  # a catalog photo finds its own product


def test_backbone_tuning_round_trip(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`train-embedding --tune-blocks 1` on the tiny catalog: only the last stage and the head convolution
    move, the loss falls, and the checkpoint builds an index (`--model NAME --weights`) that finds a product."""
    import json

    from lookalike.cli import main as cli
    from lookalike.products.build import build_index
    from lookalike.products.search import ProductSearcher
    from model_zoo.product_embedders import create_embedder

    monkeypatch.setenv("LOOKALIKE_BACKEND", "torch")  # no ONNX export of a throw-away model
    manifest, chosen = _tiny_grocery_catalog(data_root, tmp_path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a photo")
    with manifest.open("a") as rows:
        rows.write(f"{broken},milk,broken-milk\n")  # skipped and reported, as a build does
    out = tmp_path / "tuned"
    assert cli.main(["train-embedding", "--data", str(data_root / "products"), "--manifest", str(manifest),
                     "--backbone", "efficientnet_lite0", "--tune-blocks", "1", "--epochs", "3",
                     "--device", "cpu", "--out", str(out), "--json"]) == 0
    report = json.loads((out / "tuning_result.json").read_text())
    assert report["photos"] == 50 and report["products"] == 10
    assert [entry["path"] for entry in report["skipped"]] == [str(broken)]  # listed as a build lists it
    # the `tuning` entry a build records, plus the model, the skipped files and the checkpoint
    assert report["category_names"] == sorted({row["category"] for photos in chosen for row in photos})
    losses = [epoch["loss"] for epoch in report["epochs"]]
    assert losses[-1] < losses[0], losses
    stock = create_embedder("efficientnet_lite0").model.state_dict()
    tuned = create_embedder("efficientnet_lite0", weights=str(out / "backbone.pt")).model.state_dict()
    moved = {".".join(key.split(".")[: 2 if key.startswith("blocks.") else 1])
             for key in stock if stock[key].is_floating_point() and not torch.equal(stock[key], tuned[key])}
    assert moved == {"blocks.6", "conv_head", "bn2"}, moved  # lite0 has 7 stages: the last one trained
    index = tmp_path / "index"
    build_index(data_root / "products", index, manifest=manifest, model="efficientnet_lite0",
                weights=str(out / "backbone.pt"), trees=4, show_bar=False)
    probe = data_root / "products" / chosen[3][0]["file"]
    result = ProductSearcher.load(index).search(probe, top_k=5, scope="all")
    assert result.results[0].product_id == chosen[3][0]["product_id"]


def test_tuning_crop_is_a_window_of_every_map_in_the_batch() -> None:
    """The crop augmentation cuts one square window, at least the asked fraction of the side, from each map."""
    from lookalike.products.backbone_tuning import _crop

    maps = torch.arange(2 * 3 * 15 * 15, dtype=torch.float32).reshape(2, 3, 15, 15)
    sizes = set()
    for seed in range(40):
        torch.manual_seed(seed)
        window = _crop(maps, 0.7)
        size = window.shape[-1]
        sizes.add(size)
        assert window.shape == (2, 3, size, size) and 10 <= size <= 15
        top, left = divmod(int(window[0, 0, 0, 0]), 15)  # values number the positions of the uncropped maps
        assert torch.equal(window, maps[..., top : top + size, left : left + size])
    assert len(sizes) > 2  # the side varies between batches
    assert torch.equal(_crop(maps, 1.0), maps)  # 1: no crop
