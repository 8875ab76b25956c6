"""Does a hit's similarity read as what it means? Reliability of the calibrated score on held-out queries.

Why: the app shows each hit's `similarity` as "the share of pairs this close that are of the same kind"
(`lookalike.products.calibration`, fitted on the catalog itself at build time). That promise is only worth
something if it holds for photos the catalog never saw: this script searches every held-out query (scope
"all", the 30 hits a results page shows), bins the hits by their score, and prints, per bin, the mean score
against the share of hits that really share the query's category, with the expected calibration error (ECE)
of the calibrated score and of the old linear mapping (1 + cos) / 2 for comparison.

    python bench/similarity_calibration.py --index IDX [--catalog assets/demo_catalog]

Queries: every clothing and grocery photo of the shared data not in the demo catalog (`bench.demo_catalog`).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

from bench.demo_catalog import held_out  # noqa: E402
from lookalike.products.calibration import linear_similarity  # noqa: E402
from lookalike.products.search import ProductSearcher  # noqa: E402

BINS = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0001])


def scored_hits(index: Path, catalog: Path, top_k: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calibrated score, cosine, same category) of every hit of every held-out query."""
    searcher = ProductSearcher.load(index)
    scores, cosines, same = [], [], []
    for item in held_out(catalog):
        result = searcher.search(item.path, top_k=top_k, scope="all", rerank=False, read_text=False)
        for hit in result.results:
            scores.append(hit.similarity)
            cosines.append(hit.cosine)
            same.append(hit.category == item.category)
    return np.asarray(scores), np.asarray(cosines), np.asarray(same, bool)


def reliability(score: np.ndarray, same: np.ndarray) -> tuple[list[str], float]:
    """Markdown rows per score bin, and the ECE (bin-size-weighted |mean score - observed share|)."""
    rows, ece = [], 0.0
    for low, high in itertools.pairwise(BINS):
        inside = (score >= low) & (score < high)
        if not inside.any():
            continue
        share, mean = same[inside].mean(), score[inside].mean()
        se = np.sqrt(share * (1 - share) / inside.sum())
        ece += inside.mean() * abs(share - mean)
        rows.append(f"| {low:.1f}-{min(high, 1.0):.1f} | {inside.sum()} | {mean:.3f} | {share:.3f} ± {se:.3f} |")
    return rows, ece


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True, help="the demo catalog's index")
    parser.add_argument("--catalog", type=Path, default=REPO_ROOT / "assets" / "demo_catalog")
    args = parser.parse_args()
    score, cosine, same = scored_hits(args.index, args.catalog)
    rows, ece = reliability(score, same)
    _, linear_ece = reliability(linear_similarity(cosine), same)
    print("| score bin | hits | mean score | share of the query's category |\n|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nECE calibrated {ece:.3f}; linear (1 + cos) / 2 {linear_ece:.3f}; {len(score)} hits")


if __name__ == "__main__":
    main()
