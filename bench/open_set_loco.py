"""The in-catalog decision on a catalog with one category left out at a time (docs/benchmarks.md, open-set).

Why: a shop's catalog never holds everything, and the decision must hold for any catalog, not just the demo.
The catalog (default: the shared products, every category) is split in half per category
(`products.splits.split_items`): for each category C in turn, the decision is fitted, exactly as a build fits
it (`products.open_set.fit`), on the catalog half without C; then the query half is scored: its photos of C
are unknown queries (the catalog has nothing like them), the others known ones. Each query's top hit is found
by brute force over the catalog half, as the store's exact re-rank finds it. Frozen embeddings, read from the
embedding cache. Prints per left-out category and pooled: AUROC, share of unknown flagged, share of known
flagged, with standard errors; for the decision as a build makes it (with the embedder's ImageNet classifier:
the class-profile cue) and, `--without-profile`, for the two vector cues alone, in the same run.

    python bench/open_set_loco.py [--catalog DIR --manifest CSV] [--without-profile] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

from lookalike.evaluation.open_set import auroc_with_se  # noqa: E402
from lookalike.paths import data_dir  # noqa: E402
from lookalike.products import open_set  # noqa: E402
from lookalike.products.catalog import read_catalog  # noqa: E402
from lookalike.products.embedding import embed_catalog  # noqa: E402
from lookalike.products.parts.open_set import OpenSet  # noqa: E402
from lookalike.products.splits import split_items  # noqa: E402


def _share(flags: np.ndarray) -> tuple[float, float]:
    p = float(flags.mean())
    return p, float(np.sqrt(p * (1 - p) / len(flags)))


def main() -> None:
    from model_zoo.product_embedders import create_embedder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=data_dir() / "products")
    parser.add_argument("--manifest", type=Path, default=data_dir() / "products_manifest.csv")
    parser.add_argument("--model", default="efficientnet_lite1")
    parser.add_argument("--without-profile", action="store_true", help="also score the two vector cues alone")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    embedder = create_embedder(args.model)
    embedded = embed_catalog(read_catalog(args.catalog, args.manifest), embedder, show_bar=False)
    variants = {"profile": OpenSet.classifier(embedder), **({"vector cues": None} if args.without_profile else {})}
    report = {name: run(embedded, classifier) for name, classifier in variants.items()}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


def run(embedded, classifier: open_set.Classifier | None) -> dict:
    """Every category left out in turn (see the module's doc)."""
    where = {item.path: i for i, item in enumerate(embedded.items)}
    vectors, labels = embedded.vectors.astype(np.float64), np.asarray([i.category for i in embedded.items])
    catalog, queries = (np.asarray([where[i.path] for i in half]) for half in split_items(list(embedded.items)))
    rows, scores, known_all, flagged_all = [], [], [], []
    for left_out in sorted(set(labels)):
        inside = catalog[labels[catalog] != left_out]
        spread, decision = open_set.fit(vectors[inside], labels[inside], classifier=classifier)
        top1 = (vectors[queries] @ vectors[inside].T).max(1)
        score = decision.score(open_set.query_features(spread, top1, vectors[queries]))
        known = labels[queries] != left_out
        flagged = score < decision.threshold
        auc, auc_se = auroc_with_se(score[known], score[~known])
        rows.append({"left_out": left_out, "unknown": int((~known).sum()), "known": int(known.sum()),
                     "auroc": auc, "auroc_se": auc_se, "unknown_flagged": float(flagged[~known].mean()),
                     "known_flagged": float(flagged[known].mean()), "threshold": decision.threshold})
        print(f"{left_out:16s} AUROC {auc:.3f} ± {auc_se:.3f}  unknown flagged {flagged[~known].mean():.3f}  "
              f"known flagged {flagged[known].mean():.3f}", flush=True)
        scores.append(score), known_all.append(known), flagged_all.append(flagged)
    known, flagged = np.concatenate(known_all), np.concatenate(flagged_all)
    pooled = {"left_out_categories": len(rows), "unknown_queries": int((~known).sum()),
              "known_queries": int(known.sum()), "mean_auroc": float(np.mean([r["auroc"] for r in rows])),
              "unknown_flagged": _share(flagged[~known]), "known_flagged": _share(flagged[known])}
    print(json.dumps({"features": list(decision.features), **pooled}), flush=True)
    return {"per_category": rows, "pooled": pooled}


if __name__ == "__main__":
    main()
