"""Build-time levers of the default (tuned) build, scored on held-out queries from one frozen pass (issue 37).

One frozen pass over every shared product photo and its mirror image (as the build's tuning runs it), then, per
protocol (the half split; GroceryStore val: the catalog every photo but the 100 val ones), each training
variant tunes the last stages on the protocol's catalog and is scored on its queries: category top-1 of the
build's logistic head, exact-product recall@1 / @10 and P@10 in scope all (no re-ranking: this isolates the
embedding, as bench/tuning_study.py does). Queries are embedded as search embeds them today: the photo alone,
no mirror image. Each tuned tail also gives the catalog's vectors three ways: with the mirror image's own maps
(today), with the photo's maps flipped (no mirror pass through the frozen stages), and from the photo alone.
Training seconds of each variant are taken in the same run (compare them as ratios: the machine is shared).

    python bench/build_levers.py --protocols half --out bench/out/build_levers_half.json
    python bench/build_levers.py --protocols val --variants base fast2 --out bench/out/build_levers_val.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protocol import VAL_SUFFIX
from tuning_study import scores

from lookalike.paths import data_dir
from lookalike.products.backbone_tuning import Tail, _batches, train_tail
from lookalike.products.catalog import read_catalog
from lookalike.products.splits import split_items
from lookalike.products.tuning import frozen_catalog
from lookalike.products.tuning_policy import TuneConfig
from model_zoo.product_embedders import create_embedder
from model_zoo.registry import DEFAULT_PRODUCT_MODEL

#: name -> (TuneConfig overrides, epochs scored along the way)
VARIANTS = {
    "base": ({"lr": 1e-4, "epochs": 3}, (2, 3)),  # before issue 37: 3 epochs, lr 1e-4, batch 32
    "lr2": ({"lr": 2e-4, "epochs": 2}, (1, 2)),  # twice the learning rate, scored after 1 and 2 epochs (today)
    "lr2b64": ({"lr": 2e-4, "batch_size": 64, "epochs": 2}, (2,)),
    "b64": ({"lr": 2.8e-4, "batch_size": 64, "epochs": 2}, (2,)),  # half the steps, lr scaled by sqrt(2)
    "crop5": ({"lr": 2e-4, "epochs": 2, "crop": 0.5}, (2,)),  # smaller crops: fewer positions a step
}


def vectors(tail: Tail, maps: torch.Tensor, mirrored: torch.Tensor | None, flip_maps: bool = False) -> np.ndarray:
    """Unit vectors: the photo's features, plus the mirror image's (its own maps, or the photo's maps flipped)."""
    tail.eval()
    out = []
    with torch.inference_mode():
        second = _batches(mirrored, "cpu") if mirrored is not None else None
        for batch in _batches(maps, "cpu"):
            features = tail.features(batch)
            if second is not None:
                features = features + tail.features(next(second))
            elif flip_maps:
                features = features + tail.features(batch.flip(-1))
            out.append(features)
    return nn.functional.normalize(torch.cat(out), dim=1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocols", nargs="+", default=["half", "val"], choices=["half", "val"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("bench/out/build_levers.json"))
    args = parser.parse_args()

    items = read_catalog(data_dir() / "products", data_dir() / "products_manifest.csv")
    embedder = create_embedder(DEFAULT_PRODUCT_MODEL, backend="torch")
    base_tail = Tail(copy.deepcopy(embedder.model), TuneConfig.blocks).eval()
    started = time.perf_counter()
    read = frozen_catalog(items, embedder, base_tail, "cpu")
    assert not read.skipped, read.skipped
    maps, mirrored = read.frozen.maps, read.frozen.mirrored
    row = {item.path: number for number, item in enumerate(items)}
    report: dict = {"frozen_pass_seconds": round(time.perf_counter() - started, 1), "photos": len(items)}
    print(json.dumps(report), flush=True)

    protocols = {}
    if "half" in args.protocols:
        protocols["half"] = split_items(items)
    if "val" in args.protocols:
        is_val = _val_paths()
        protocols["val"] = ([i for i in items if _key(i.path) not in is_val],
                            [i for i in items if _key(i.path) in is_val])
    for name, (catalog, queries) in protocols.items():
        c_rows = torch.tensor([row[i.path] for i in catalog])
        q_rows = torch.tensor([row[i.path] for i in queries])
        c_maps, q_maps = maps[c_rows], maps[q_rows]
        c_mirrored = mirrored[c_rows] if mirrored is not None else None  # None: no mirror pass (today)
        entry: dict = {"catalog": len(catalog), "queries": len(queries), "variants": {}}
        report[name] = entry
        for variant in args.variants:
            overrides, scored_at = VARIANTS[variant]
            config = replace(TuneConfig(), **overrides)
            tail = Tail(copy.deepcopy(embedder.model), config.blocks)
            results: dict = {}
            scoring = [0.0]

            def on_epoch(epoch: int, trained: Tail, results: dict = results, scored_at: tuple = scored_at,
                         scoring: list = scoring, data: tuple = (name, variant, catalog, queries, c_maps,
                                                                  c_mirrored, q_maps)) -> None:
                if epoch not in scored_at:
                    return
                begun = time.perf_counter()
                protocol, variant_name, catalog, queries, c_maps, c_mirrored, q_maps = data
                query = vectors(trained, q_maps, None)
                results[epoch] = {
                    how: scores(vectors(trained, c_maps, *spec), catalog, query, queries)
                    for how, spec in (("mirror", (c_mirrored,)), ("flipped_maps", (None, True)), ("photo", (None,)))
                    if how != "mirror" or c_mirrored is not None
                }
                scoring[0] += time.perf_counter() - begun
                print(protocol, variant_name, epoch, json.dumps({h: {k: v["value"] for k, v in s.items()}
                                                                 for h, s in results[epoch].items()}), flush=True)

            begun = time.perf_counter()
            log = train_tail(tail, c_maps, [i.category for i in catalog], [i.product_id for i in catalog], config,
                             on_epoch=on_epoch)
            training = time.perf_counter() - begun - scoring[0]
            entry["variants"][variant] = {"config": overrides, "log": log, "training_seconds": round(training, 1),
                                          "scores": results}
            print(name, variant, "training seconds (scoring excluded)", round(training, 1), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1))


def _key(path: Path) -> str:
    return str(Path(path).resolve())


def _val_paths() -> set[str]:
    """The GroceryStore val photos (bench/protocol.py's queries), as resolved paths."""
    import csv

    manifest = data_dir() / "products_manifest.csv"
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    column = "file" if "file" in rows[0] else "path"
    found = set()
    for r in rows:
        if r.get("original_label", "").endswith(VAL_SUFFIX):
            beside = manifest.parent / r[column]
            found.add(_key(beside if beside.exists() else data_dir() / "products" / r[column]))
    return found


if __name__ == "__main__":
    main()
