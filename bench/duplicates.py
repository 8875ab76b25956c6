"""Choose and score the near-duplicate test (`lookalike.products.duplicates`) on the shared product photos.

Positives: catalog photos against copies made here (in memory, never written to the repo): the same bytes,
recompressed (JPEG q 30-60), resized (30-60 %, recompressed), cropped (a random window of 60-95 % of each side)
and cropped then resized. Negatives: another photo of the same product (the shared manifest's product_id:
GroceryStore packs, often the same shelf), and each photo's nearest other catalog photo by the index's vectors
(the frozen default embedder): the candidates the app's shortlist would hand the test.

The originals are split in two halves by a seeded draw: the threshold is chosen on the first (the lowest that
keeps every negative of that half out, then the midpoint to the next negative score), and precision and recall
are reported on the second, with standard errors. Also reported: how often the original is among a copy's
`CANDIDATES` nearest catalog photos (the shortlist's recall).

    python bench/duplicates.py --originals 300 --json bench/out/duplicates.json
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lookalike.paths import data_dir
from lookalike.products import duplicates
from lookalike.products.catalog import read_catalog


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _crop(image: Image.Image, rng: random.Random, low: float = 0.6) -> Image.Image:
    width, height = image.size
    w, h = round(width * rng.uniform(low, 0.95)), round(height * rng.uniform(low, 0.95))
    x, y = rng.randint(0, width - w), rng.randint(0, height - h)
    return image.crop((x, y, x + w, y + h))


def copies(image: Image.Image, rng: random.Random) -> dict[str, Image.Image]:
    """The kinds of copy a shop's admin might upload again."""
    def resized(picture: Image.Image, share: float) -> Image.Image:
        return picture.resize((max(16, round(picture.width * share)), max(16, round(picture.height * share))))

    return {
        "same file": image,
        "recompressed": _jpeg(image, rng.randint(30, 60)),
        "resized": _jpeg(resized(image, rng.uniform(0.3, 0.6)), 85),
        "cropped": _jpeg(_crop(image, rng), 90),
        "cropped+resized": _jpeg(resized(_crop(image, rng), rng.uniform(0.4, 0.7)), 75),
    }


def _se(share: float, count: int) -> float:
    return float(np.sqrt(share * (1 - share) / count)) if count else float("nan")


def _scores(pairs: list[tuple[str, int, Image.Image | Path, Path]]) -> list[tuple[str, int, tuple[float, float]]]:
    out = []
    for kind, group, first, second in pairs:
        a = duplicates.prepared(first if isinstance(first, Image.Image) else Image.open(first).convert("RGB"))
        b = duplicates.prepared(Image.open(second).convert("RGB"))
        out.append((kind, group, duplicates.overlap(a, b)))
    return out


def _choose(tune: list[tuple[bool, tuple[float, float]]]) -> tuple[float, float]:
    """The rule flagging the most positives of the first half and none of its negatives; among equals, the one
    farthest from the negatives (the middle of the widest interval of thresholds that does as well)."""
    best = None
    for threshold in np.round(np.arange(0.80, 0.996, 0.005), 3):
        for limit in np.arange(4.0, 80.5, 2.0):
            flagged = [positive for positive, (score, colour) in tune if score >= threshold and colour <= limit]
            if flagged.count(False):
                continue
            key = (flagged.count(True), -threshold, limit)  # most found; then the loosest rule that is still clean
            best = max(best or key, key)
    found = best[0]
    clean = [(t, c) for t in np.round(np.arange(0.80, 0.996, 0.005), 3) for c in np.arange(4.0, 40.5, 1.0)
             if all(not (s >= t and d <= c) for p, (s, d) in tune if not p)
             and sum(p and s >= t and d <= c for p, (s, d) in tune) == found]
    thresholds, limits = sorted({t for t, _ in clean}), sorted({c for _, c in clean})
    return float(np.median(thresholds)), float(np.median(limits))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--originals", type=int, default=300, help="catalog photos copied (half choose, half score)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from lookalike.products.embedding import embed_catalog
    from model_zoo import create_embedder

    root = data_dir()
    items = read_catalog(root / "products", root / "products_manifest.csv")
    started = time.perf_counter()
    embedder = create_embedder("efficientnet_lite1")
    embedded = embed_catalog(items, embedder, show_bar=False)
    paths = [item.path for item in embedded.items]
    unit = embedded.vectors / np.linalg.norm(embedded.vectors, axis=1, keepdims=True)
    by_product = defaultdict(list)
    for number, item in enumerate(embedded.items):
        if item.product_id:
            by_product[item.product_id].append(number)
    rng = random.Random(args.seed)
    chosen = rng.sample(range(len(paths)), args.originals)
    pairs, shortlist = [], []
    for order, number in enumerate(chosen):
        half = order % 2
        original = Image.open(paths[number]).convert("RGB")
        made = copies(original, rng)
        for kind, copy in made.items():
            pairs.append((kind, half, copy, paths[number]))
        if half == 1:  # the shortlist's recall: is the original among a copy's nearest catalog photos?
            vectors = embedder.embed(list(made.values()))
            for kind, vector in zip(made, vectors, strict=True):
                nearest = np.argsort(-(unit @ (vector / np.linalg.norm(vector))))[:duplicates.CANDIDATES]
                shortlist.append((kind, number in nearest))
        nearest = next(int(i) for i in np.argsort(-(unit @ unit[number]))[:2] if i != number)
        if embedded.digests[nearest] != embedded.digests[number]:
            pairs.append(("nearest other photo", half, paths[nearest], paths[number]))
        same = [i for i in by_product.get(embedded.items[number].product_id, []) if i != number]
        if same and len(by_product[embedded.items[number].product_id]) < len(paths) // 2:
            pairs.append(("same product, other photo", half, paths[rng.choice(same)], paths[number]))
    scored = _scores(pairs)
    positive = {"same file", "recompressed", "resized", "cropped", "cropped+resized"}
    tune = [(kind in positive, s) for kind, half, s in scored if half == 0]
    threshold, colour_limit = _choose(tune)
    report: dict = {"chosen_on_first_half": {"threshold": threshold, "colour_limit": colour_limit},
                    "module": {"threshold": duplicates.THRESHOLD, "colour_limit": duplicates.COLOUR_LIMIT},
                    "originals": args.originals, "seed": args.seed, "catalog": len(paths)}
    test = [(kind, s) for kind, half, s in scored if half == 1]
    for name, cut in (("chosen", (threshold, colour_limit)),
                      ("module", (duplicates.THRESHOLD, duplicates.COLOUR_LIMIT))):
        rows = {}
        for kind in sorted({k for k, _ in test}):
            values = [s for k, s in test if k == kind]
            flagged = sum(s[0] >= cut[0] and s[1] <= cut[1] for s in values)
            share = flagged / len(values)
            rows[kind] = {"pairs": len(values), "flagged": flagged, "share": round(share, 4),
                          "se": round(_se(share, len(values)), 4)}
        tp = sum(r["flagged"] for k, r in rows.items() if k in positive)
        fp = sum(r["flagged"] for k, r in rows.items() if k not in positive)
        pos = sum(r["pairs"] for k, r in rows.items() if k in positive)
        precision = tp / (tp + fp) if tp + fp else float("nan")
        report[name] = {"rule": {"threshold": cut[0], "colour_limit": cut[1]}, "by_kind": rows,
                        "recall": round(tp / pos, 4),
                        "recall_se": round(_se(tp / pos, pos), 4), "precision": round(precision, 4),
                        "precision_se": round(_se(precision, tp + fp), 4), "false_positives": fp}
    kinds = sorted({k for k, _ in shortlist})
    report["shortlist_recall"] = {k: round(np.mean([hit for kk, hit in shortlist if kk == k]), 4) for k in kinds}
    report["quantiles_second_half"] = {  # 0, 5, 50, 95, 100 %: correlation, then colour difference
        kind: [[round(float(q), 3) for q in np.quantile([s[axis] for k, s in test if k == kind],
                                                        [0, 0.05, 0.5, 0.95, 1])] for axis in (0, 1)]
        for kind in sorted({k for k, _ in test})}
    report["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
