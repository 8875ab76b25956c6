"""The near-duplicate test on real photos: copies are caught, another photo of the same product is not."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.products import duplicates


def _reencoded(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_copies_are_duplicates_and_another_photo_of_the_product_is_not(data_root: Path) -> None:
    folder = data_root / "products" / "juice"
    original, other = (Image.open(folder / f"grocery_train_Bravo-Apple-Juice_00{n}.jpg").convert("RGB") for n in (1, 2))
    width, height = original.size
    copies = [
        original,
        _reencoded(original, 35),
        _reencoded(original.resize((width // 3, height // 3)), 80),
        _reencoded(original.crop((width // 10, height // 8, width - width // 7, height - height // 12)), 90),
    ]
    prepared = duplicates.prepared(original)
    for copy in copies:
        assert duplicates.is_duplicate(duplicates.overlap(prepared, duplicates.prepared(copy)))
        assert duplicates.is_duplicate(duplicates.overlap(duplicates.prepared(copy), prepared))  # either order
    assert not duplicates.is_duplicate(duplicates.overlap(prepared, duplicates.prepared(other)))
    recoloured = Image.fromarray(np.asarray(original)[:, :, ::-1])  # the same shot, other colours
    assert not duplicates.is_duplicate(duplicates.overlap(prepared, duplicates.prepared(recoloured)))


def test_groups_join_copies_and_same_content(tmp_path: Path, data_root: Path) -> None:
    folder = data_root / "products" / "milk"
    photos = sorted(folder.glob("grocery_train_Arla-Standard-Milk_*.jpg"))[:3]
    crop = tmp_path / "crop.jpg"
    with Image.open(photos[0]) as image:
        image.crop((20, 20, image.width - 30, image.height - 10)).save(crop, quality=85)
    pictures = {0: photos[0], 1: photos[1], 2: photos[2], 3: crop, 4: photos[1]}
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 16)).astype(np.float32)
    vectors[3] = vectors[0] + 0.01  # the crop is the original's nearest neighbour
    digests = ["a", "b", "c", "d", "b"]  # item 4 is item 1's file again
    found = duplicates.groups(list(pictures), vectors, digests, pictures.__getitem__)
    assert found == [[0, 3], [1, 4]]


def test_the_duplicates_command_lists_an_index_s_groups(data_root: Path, tmp_path: Path, capsys) -> None:
    import json
    import shutil

    from lookalike.cli.main import main
    from tests.products.tiny_index import build_tiny

    catalog = tmp_path / "catalog"
    for category, product in (("juice", "Bravo-Apple-Juice"), ("milk", "Arla-Standard-Milk")):
        (catalog / category).mkdir(parents=True)
        for n in range(1, 5):
            name = f"grocery_train_{product}_00{n}.jpg"
            shutil.copy(data_root / "products" / category / name, catalog / category / name)
    original = catalog / "juice" / "grocery_train_Bravo-Apple-Juice_001.jpg"
    with Image.open(original) as image:
        image.crop((30, 20, image.width - 25, image.height - 40)).save(catalog / "juice" / "zz_crop.jpg", quality=80)
    shutil.copy(catalog / "milk" / "grocery_train_Arla-Standard-Milk_002.jpg", catalog / "milk" / "zz_copy.jpg")
    build_tiny(catalog, tmp_path / "index")
    assert main(["duplicates", str(tmp_path / "index"), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["groups"]
    names = sorted(sorted(Path(row["path"]).name for row in group) for group in found)
    assert names == [["grocery_train_Arla-Standard-Milk_002.jpg", "zz_copy.jpg"], [original.name, "zz_crop.jpg"]]
