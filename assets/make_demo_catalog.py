"""Make the small product catalog the app searches on first start, from freely licensed photos only.

Why: a hosted demo must answer its first search without anyone building an index from data it does
not ship, so the repo bundles a catalog it may redistribute. Only two of the shared sources qualify:
the CC0 clothing dataset (`clothing_*` photos, 10 categories) and the MIT Grocery Store Dataset
(`grocery_*` photos, 9 categories, plus its studio "iconic" images); the Myntra photos (no licence)
and the faces (LFW news photos) are never copied.

What it writes (replacing `--out`, default `assets/demo_catalog/`):
- `photos/<category>/<file>.jpg`: `--per-category` photos of every category, downscaled to at most
  320 px on the longest side and re-encoded as JPEG (quality 85, no EXIF). Clothing: evenly spread
  over the category's photos sorted by name. Grocery: photos of the dataset's official `train` split,
  shared out round-robin over the category's products so every product is in, each product's share
  evenly spread over its photo series; with `--iconic`, also each product's studio catalog image.
- `examples/<category>_<file>.jpg` (one flat folder, as the app lists it): `--examples` query photos per
  category kept out of the catalog, downscaled the same way (grocery: the official `val` split where the
  category has one).
- `manifest.csv`: `path,category,product_id,title` for the catalog loader (`lookalike.products.catalog`),
  plus `source_repo,source_path` (provenance; the loader ignores them). No prices or URLs are invented.
- `ATTRIBUTION.md`: the sources, their licences and commits, and what was done to the photos.

Every choice follows sorted file names: no randomness, so a rerun writes the same files.
Run: python assets/make_demo_catalog.py [--per-category N] [--no-iconic] (photos from LOOKALIKE_DATA,
default ../shared/data beside the repo).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from PIL import Image, ImageOps

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT = REPO_ROOT / "assets" / "demo_catalog"
#: Chosen by `bench/demo_catalog.py`: the smallest size whose held-out category top-1 clears 85% with margin
#: (0.880 +- 0.008 on 1,766 photos; 20 a category: 0.857), built from an empty cache in ~37 s on 2 cores.
PER_CATEGORY = 30
EXAMPLES = 2
LONGEST_SIDE = 320
JPEG_QUALITY = 85
SOURCES = {"clothing-dataset-small": "clothing_", "grocery-store-dataset": "grocery_"}
CLOTHING_TITLES = {"longsleeve": "Long-sleeve top", "outwear": "Outerwear", "t-shirt": "T-shirt"}
GROCERY_REPO = "marcusklasson/GroceryStoreDataset"
T = TypeVar("T")
ICONIC_PATH = "dataset/iconic-images-and-descriptions/Packages/{coarse}/{product}/{product}_Iconic.jpg"

ATTRIBUTION = """\
# Demo catalog: attribution

The photos in this folder come from two freely licensed datasets. They were downscaled to at most
{side} px on the longest side and re-encoded as JPEG (quality {quality}, metadata such as EXIF dropped);
nothing else was changed. `manifest.csv` gives every catalog photo's original path in its repository
(`source_repo`, `source_path`). Regenerate with `python assets/make_demo_catalog.py`.

## Clothing dataset (small): categories {clothing}
- Repository: https://github.com/alexeygrigorev/clothing-dataset-small
  (commit `11961516512414bf9f6c150a832cfd21b54a6b54`), from "Clothing dataset" by Alexey Grigorev.
- Licence: CC0 1.0 Universal (public domain dedication),
  https://creativecommons.org/publicdomain/zero/1.0/
- {clothing_count} catalog photos and {clothing_examples} example photos.

## Grocery Store Dataset: categories {grocery}
- Repository: https://github.com/marcusklasson/GroceryStoreDataset
  (commit `fc80ba90f803d79d0383df52c5a4ac5de99ff6fc`), "A Hierarchical Grocery Store Image Dataset
  with Visual and Semantic Labels" (Klasson, Zhang, Kjellstrom, WACV 2019); the `Packages` group,
  whose coarse classes are the categories here and whose fine-grained classes are the `product_id`s.
- Licence: MIT License, Copyright (c) 2019 Marcus Klasson:

  > Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
  > associated documentation files (the "Software"), to deal in the Software without restriction,
  > including without limitation the rights to use, copy, modify, merge, publish, distribute,
  > sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
  > furnished to do so, subject to the following conditions:
  >
  > The above copyright notice and this permission notice shall be included in all copies or
  > substantial portions of the Software.
  >
  > THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
  > NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
  > NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
  > OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
  > CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.

- {grocery_count} catalog photos (the dataset's `train` split{iconic}) and {grocery_examples} example
  photos (its `val` split; `train` for sour-milk and soy-milk, which have no `val` photos).
"""


@dataclass(frozen=True)
class Photo:
    """One source photo: `file` relative to `products/` (or `products_catalog/` for iconic images)."""

    file: str
    category: str
    product_id: str
    source_repo: str
    source_path: str

    @property
    def name(self) -> str:
        return Path(self.file).name

    @property
    def grocery(self) -> bool:
        return self.name.startswith(SOURCES["grocery-store-dataset"])

    @property
    def split(self) -> str:
        """The grocery dataset's official split (`train`, `val`); empty for clothing."""
        return self.name.split("_")[1] if self.grocery else ""


def data_dir() -> Path:
    return Path(os.environ.get("LOOKALIKE_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


def read_sources(data: Path) -> list[Photo]:
    """The clothing and grocery rows of the shared manifest (checked by file prefix too), sorted by file."""
    with (data / "products_manifest.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    photos = [
        Photo(row["file"], row["category"], row["product_id"], row["source_repo"], row["source_path"])
        for row in rows
        if row["source"] in SOURCES and Path(row["file"]).name.startswith(SOURCES[row["source"]])
    ]
    return sorted(photos, key=lambda photo: photo.file)


def spread(items: list[T], count: int) -> list[T]:
    """`count` of `items` (all when fewer) at evenly spaced positions, the first and last included."""
    if count >= len(items):
        return list(items)
    if count <= 0:
        return []
    if count == 1:
        return [items[0]]
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def by_product(photos: list[Photo], count: int) -> list[Photo]:
    """`count` photos shared out round-robin over the products (sorted), each share spread over its series."""
    products: dict[str, list[Photo]] = defaultdict(list)
    for photo in photos:
        products[photo.product_id].append(photo)
    quota = dict.fromkeys(sorted(products), 0)
    while sum(quota.values()) < min(count, len(photos)):
        for product in quota:
            if quota[product] < len(products[product]) and sum(quota.values()) < count:
                quota[product] += 1
    return sorted((p for product, n in quota.items() for p in spread(products[product], n)), key=lambda p: p.file)


def choose(photos: list[Photo], per_category: int, examples: int) -> tuple[list[Photo], list[Photo]]:
    """(catalog, examples): the examples are picked first, so they do not move when `per_category` does."""
    categories: dict[str, list[Photo]] = defaultdict(list)
    for photo in photos:
        categories[photo.category].append(photo)
    catalog: list[Photo] = []
    shown: list[Photo] = []
    for category in sorted(categories):
        members = categories[category]
        if members[0].grocery:
            train = [p for p in members if p.split == "train"]
            val = [p for p in members if p.split == "val"]
            picked = by_product(val or train, examples)
            catalog += by_product([p for p in train if p not in picked], per_category)
        else:
            picked = spread(members, examples)
            catalog += spread([p for p in members if p not in picked], per_category)
        shown += picked
    return catalog, shown


def iconic_photos(data: Path, photos: list[Photo]) -> list[Photo]:
    """The grocery products' studio catalog images (one per product in `products_catalog/`)."""
    coarse = {p.product_id: p.source_path.split("/")[3] for p in photos if p.grocery}
    found = []
    for path in sorted((data / "products_catalog").glob("*/*_Iconic.jpg")):
        product = path.name.removesuffix("_Iconic.jpg")
        source = ICONIC_PATH.format(coarse=coarse[product], product=product)
        found.append(Photo(f"{path.parent.name}/{path.name}", path.parent.name, product, GROCERY_REPO, source))
    return found


def title(photo: Photo) -> str:
    """A readable product name: the grocery product id in words; clothing: the category and a short id."""
    if photo.grocery or photo.name.endswith("_Iconic.jpg"):
        return photo.product_id.replace("-", " ")
    return f"{CLOTHING_TITLES.get(photo.category, photo.category.capitalize())} {photo.product_id[:8]}"


def shrink(source: Path, target: Path) -> None:
    """Upright, RGB, at most LONGEST_SIDE px (never enlarged), JPEG without metadata."""
    with Image.open(source) as image:
        picture = ImageOps.exif_transpose(image).convert("RGB")
    picture.thumbnail((LONGEST_SIDE, LONGEST_SIDE), Image.Resampling.LANCZOS)
    target.parent.mkdir(parents=True, exist_ok=True)
    picture.save(target, "JPEG", quality=JPEG_QUALITY, optimize=True)


def write(out: Path, data: Path, catalog: list[Photo], iconic: list[Photo], shown: list[Photo]) -> None:
    if out.exists():
        shutil.rmtree(out)
    rows = []
    for photo in catalog:
        relative = Path("photos") / photo.category / photo.name
        shrink(data / "products" / photo.file, out / relative)
        rows.append((relative, photo))
    for photo in iconic:
        relative = Path("photos") / photo.category / f"grocery_iconic_{photo.product_id}.jpg"
        shrink(data / "products_catalog" / photo.file, out / relative)
        rows.append((relative, photo))
    for photo in shown:
        shrink(data / "products" / photo.file, out / "examples" / f"{photo.category}_{photo.name}")
    rows.sort(key=lambda row: row[0].as_posix())
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "category", "product_id", "title", "source_repo", "source_path"])
        for relative, photo in rows:
            writer.writerow([relative.as_posix(), photo.category, photo.product_id, title(photo),
                             photo.source_repo, photo.source_path])
    clothing = sorted({p.category for p in catalog if not p.grocery})
    grocery = sorted({p.category for p in catalog if p.grocery})
    (out / "ATTRIBUTION.md").write_text(ATTRIBUTION.format(
        side=LONGEST_SIDE, quality=JPEG_QUALITY, clothing=", ".join(clothing), grocery=", ".join(grocery),
        clothing_count=sum(not p.grocery for p in catalog), clothing_examples=sum(not p.grocery for p in shown),
        grocery_count=sum(p.grocery for p in catalog) + len(iconic),
        grocery_examples=sum(p.grocery for p in shown),
        iconic=f", plus its {len(iconic)} studio iconic images" if iconic else "",
    ), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder to (re)write")
    parser.add_argument("--per-category", type=int, default=PER_CATEGORY,
                        help="catalog photos per category (all there are when fewer)")
    parser.add_argument("--examples", type=int, default=EXAMPLES, help="example query photos per category")
    parser.add_argument("--iconic", action=argparse.BooleanOptionalAction, default=True,
                        help="add the grocery products' studio catalog images (default; held-out grocery `val` "
                             "top-1 0.890 against 0.850 without, for 31 photos)")
    args = parser.parse_args(argv)
    data = data_dir()
    photos = read_sources(data)
    catalog, shown = choose(photos, args.per_category, args.examples)
    iconic = iconic_photos(data, photos) if args.iconic else []
    write(args.out, data, catalog, iconic, shown)
    size = sum(path.stat().st_size for path in args.out.rglob("*") if path.is_file())
    print(f"{len(catalog) + len(iconic)} catalog photos, {len(shown)} examples, {size / 1e6:.1f} MB in {args.out}")


if __name__ == "__main__":
    main()
