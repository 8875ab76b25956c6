"""Which cues and weights the in-catalog decision uses: the study behind docs/experiments/open-set.md.

Why: the decision is fitted at build on the catalog alone (leave one category out), so which cues it reads,
how they are weighed and at which temperature the class profile is read cannot be fitted there; they are
chosen here on the demo protocol's development half (`bench/open_set_demo.py`: held-out clothing and grocery
photos against the shared Myntra photos) and reported on the test half. For an index (its catalog vectors, its
embedder's ImageNet classifier) and a half, each variant's score is fitted on the catalog exactly as a build
fits it (`products.open_set.fit` internals: the same leave-one-category-out queries) and scored on the half's
queries, embedded as search embeds them: AUROC ± SE, unknown and known queries flagged at the threshold the
build would choose (KNOWN_FLAGGED of the left-out known queries), and the unknown flagged rate of the kinds
closest to the catalog's. `--oracle` adds a logistic fit on the half's own queries (5-fold): an upper bound
no build can have.

    python bench/open_set_cues.py --index IDX [--half dev] [--scales 1.5 2 3] [--oracle]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

from bench.open_set_demo import queries  # noqa: E402
from lookalike.evaluation.open_set import auroc_with_se  # noqa: E402
from lookalike.products import open_set, open_set_fit  # noqa: E402
from lookalike.products.embedding import embed_catalog  # noqa: E402
from lookalike.products.parts.open_set import OpenSet  # noqa: E402
from lookalike.products.search import ProductSearcher  # noqa: E402

#: Weights of the standardised (top1, centroid_z, profile) tried; None: all three fitted (non-negative).
VARIANTS = (None, (1, 1, 0), (0, 0, 1), (1, 0, 1), (1, 0, 2), (1, 1, 2))
CLOSE_KINDS = ("backpacks", "innerwear-vests", "socks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--half", choices=("dev", "test"), default="dev")
    parser.add_argument("--scales", type=float, nargs="+", default=[open_set.PROFILE_SCALE])
    parser.add_argument("--oracle", action="store_true")
    args = parser.parse_args()
    searcher = ProductSearcher.load(args.index)
    ids, catalog = searcher.index.store.vectors()
    catalog = catalog.astype(np.float64)
    labels = np.asarray([row["category"] for row in searcher.index.rows.get([int(i) for i in ids])])
    known_items, unknown_items = queries(args.half, None)
    embedder = searcher.embedder.for_queries()
    known = embed_catalog(known_items, embedder, show_bar=False).vectors.astype(np.float64)
    unknown_set = embed_catalog(unknown_items, embedder, show_bar=False)
    unknown, kinds = unknown_set.vectors.astype(np.float64), np.asarray([i.category for i in unknown_set.items])
    classifier = OpenSet.classifier(searcher.embedder)
    classes, codes = np.unique(labels, return_inverse=True)
    for scale in args.scales:
        open_set.PROFILE_SCALE = scale
        spread = open_set._spread(catalog, codes, [str(c) for c in classes], classifier)
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(len(codes), size=min(open_set.SAMPLE, len(codes)), replace=False))
        features, side = open_set._loco(catalog, codes, spread, sample, rng)
        mean, sd = features.mean(0), np.maximum(features.std(0), open_set.EPS)
        mine = [open_set.query_features(spread, (q @ catalog.T).max(1), q) for q in (known, unknown)]
        for weights in VARIANTS:
            if weights is None:
                direction, bias = open_set_fit.logistic((features - mean) / sd, side)
            else:
                direction, bias = np.asarray(weights, float), 0.0
            score = [((f - mean) / sd) @ direction + bias for f in (features, *mine)]
            cut = open_set.choose_threshold(score[0][side == 1], score[0][side == 0])
            auc, se = auroc_with_se(score[1], score[2])
            close = " ".join(f"{k}={np.mean(score[2][kinds == k] < cut):.2f}" for k in CLOSE_KINDS)
            print(f"scale {scale} weights {np.round(direction, 2)}: AUROC {auc:.4f} ± {se:.4f}, unknown flagged "
                  f"{np.mean(score[2] < cut):.3f}, known flagged {np.mean(score[1] < cut):.3f} ({close})", flush=True)
        if args.oracle:
            oracle(*mine)


def oracle(known: np.ndarray, unknown: np.ndarray) -> None:
    """A logistic fit on the queries themselves (5-fold), AUROC and unknown flagged at 3% known flagged."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    for columns in ([0, 1], [0, 1, 2]):
        x = np.r_[known, unknown][:, columns]
        y = np.r_[np.ones(len(known)), np.zeros(len(unknown))]
        p = cross_val_predict(LogisticRegression(), (x - x.mean(0)) / x.std(0), y, cv=5, method="predict_proba")[:, 1]
        cut = np.quantile(p[y == 1], 0.03)
        print(f"oracle on features {columns}: AUROC {auroc_with_se(p[y == 1], p[y == 0])[0]:.4f}, unknown flagged "
              f"{np.mean(p[y == 0] < cut):.3f} at 3% known", flush=True)


if __name__ == "__main__":
    main()
