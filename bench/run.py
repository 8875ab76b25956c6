"""What search costs, measured in one run on this machine: `python bench/run.py [--quick]`.

Writes bench/out/report.md (and prints the same tables; docs/benchmarks.md holds the recorded ones):
  1. ANN: Annoy (trees x search_k) and faiss HNSW (if installed) against exact BLAS search, on the
     real catalog's embeddings and on synthetic 100k (and, without --quick, 1M) vectors.
  2. The seed's search (all vectors read from SQLite per query, brute-force Euclidean) against the
     index's search on the same catalog, as a speed ratio.
  3. Embedding throughput at batch 1, 8, 32; product query and face verify p50/p95; app cold start.
Every figure comes from this run; ratios are taken between rows measured side by side.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from bench.ann import (  # noqa: E402
    AnnRow,
    annoy_rows,
    clustered_unit_vectors,
    exact_rows,
    faiss_rows,
    index_default_rows,
)
from lookalike.evaluation.report import markdown_table  # noqa: E402

K = 30
SYNTHETIC_DIM = 128  # the report's embedding size; 1M x 128 float32 = 0.5 GB, fits 24 GiB with its indexes
QUERIES = 200


def ann_section(
    name: str, base: np.ndarray, queries: np.ndarray, trees: list[int], search_ks: list[int]
) -> list:
    print(f"ANN on {name}: {len(base)} x {base.shape[1]}", file=sys.stderr, flush=True)
    exact, truth = exact_rows(name, base, queries, K)
    rows: list[AnnRow] = [exact]
    rows += index_default_rows(name, base, queries, truth)
    rows += annoy_rows(name, base, queries, truth, trees, search_ks)
    rows += faiss_rows(name, base, queries, truth, ef_searches=(32, 64, 128))
    return [row.row(K) for row in rows]


def catalog_queries(vectors: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(base, queries): every n-th catalog vector is held out as a query, so no query finds itself."""
    step = max(2, len(vectors) // count)
    held = np.zeros(len(vectors), bool)
    held[::step] = True
    return vectors[~held], vectors[held][:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="skip the 1M-vector dataset; fewer repetitions")
    parser.add_argument(
        "--index", type=Path, default=REPO_ROOT / "index", help="product index (built if missing)"
    )
    parser.add_argument("--report", type=Path, default=REPO_ROOT / "bench" / "out" / "report.md")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["catalog", "synthetic", "seed", "speed", "app"]
    )
    args = parser.parse_args(argv)
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    sections: list[tuple[str, str, list[dict]]] = []

    if {"catalog", "seed", "speed", "app"} - set(args.skip):
        from bench.services import ensure_index

        index_note = ensure_index(args.index)
    if "catalog" not in args.skip:
        from lookalike.products.index import load_index

        _, vectors = load_index(args.index).store.vectors()
        base, queries = catalog_queries(vectors, QUERIES)
        rows = ann_section("catalog", base, queries, [8, 32, 64], [-1, 1000, 4000])
        sections.append(
            ("ANN on the real catalog embeddings", index_note + catalog_note(base, queries), rows)
        )
    if "synthetic" not in args.skip:
        sizes = [100_000] if args.quick else [100_000, 1_000_000]
        for size in sizes:
            # one draw, split: the queries share the base's clusters (a seed of their own would draw new ones)
            base = clustered_unit_vectors(size + QUERIES, SYNTHETIC_DIM, seed=0)
            base, queries = base[:size], base[size:]
            trees = [8, 32, 64] if size <= 100_000 else [8, 32]
            rows = ann_section(f"synthetic {size // 1000}k", base, queries, trees, [-1, 4000, 20000])
            sections.append((f"ANN on synthetic {size:,} x {SYNTHETIC_DIM}", SYNTHETIC_NOTE, rows))
            del base
    if "seed" not in args.skip:
        from bench.services import seed_vs_index

        with tempfile.TemporaryDirectory() as tmp:
            sections.append(
                (
                    "The seed's search vs ours (same catalog, same queries)",
                    SEED_NOTE,
                    seed_vs_index(args.index, Path(tmp), runs=50 if args.quick else 200),
                )
            )
    if "speed" not in args.skip:
        from bench.services import embed_throughput, face_verify_latency, product_query_latency

        runs = 20 if args.quick else 60
        sections.append(
            (
                "Embedding throughput (default product embedder)",
                THROUGHPUT_NOTE,
                embed_throughput(args.index, batch_sizes=(1, 8, 32)),
            )
        )
        sections.append(
            (
                "End-to-end latency (warm)",
                LATENCY_NOTE,
                product_query_latency(args.index, runs) + face_verify_latency(runs),
            )
        )
    if "app" not in args.skip:
        from bench.cold_start import app_cold_start

        seconds = app_cold_start(args.index)
        sections.append(
            (
                "App cold start",
                COLD_NOTE,
                [{"what": "python app.py --index DIR until HTTP answers", "seconds": round(seconds, 2)}],
            )
        )
    wall = time.perf_counter() - started
    report = render(sections, args.quick, wall, (load_start, os.getloadavg()[0]))
    args.report.parent.mkdir(parents=True, exist_ok=True)  # bench/out/ is git-ignored, so absent in a clone
    args.report.write_text(report)
    print(report)
    print(f"wrote {args.report} in {wall:.0f} s", file=sys.stderr)
    return 0


def catalog_note(base: np.ndarray, queries: np.ndarray) -> str:
    return (
        f" Base: {len(base)} catalog vectors ({base.shape[1]}-d); queries: {len(queries)} other catalog "
        "photos held out of the base. Recall is against exact search on the same base."
    )


SYNTHETIC_NOTE = (
    f"Clustered unit vectors (1,000 clusters in a 24-d latent space mapped to {SYNTHETIC_DIM}-d, plus "
    f"noise), {SYNTHETIC_DIM}-d so that 1M vectors and their indexes fit 2 cores / 24 GiB and build in "
    f"minutes; the real catalog's vectors are wider (see above). {QUERIES} queries from the same "
    "distribution, not in the base."
)
SEED_NOTE = (
    "Seed: per query, read every vector from SQLite (float32 BLOBs) and rank all by Euclidean distance "
    "(numpy-vectorised, which flatters the seed). Ours: the index's `search_vector` (category head, Annoy "
    "candidates, exact re-rank). Both start from the same query vectors, so the embedding cost is left out; "
    "recall@30 is against exact search on the whole catalog, so for scope category it measures the category "
    "filter (results outside the predicted category are left out by design), not ANN error."
)
THROUGHPUT_NOTE = (
    "Catalog photos decoded beforehand; the embedder's default config (includes the mirror-image pass)."
)
LATENCY_NOTE = (
    "Product query: `ProductSearcher.search(photo path, top_k=30)` on catalog photos "
    "(decode + embed + search). "
    "Face verify: `FaceVerifier.verify` on an LFW pair (detect, align, embed both photos; default model)."
)
COLD_NOTE = (
    "Imports, index and model loading, warm-up requests and Gradio start-up; the index is already built."
)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def render(
    sections: list[tuple[str, str, list[dict]]], quick: bool, wall: float, load: tuple[float, float]
) -> str:
    lines = [
        "# lookalike benchmark report",
        "",
        f"Generated by `python bench/run.py{' --quick' if quick else ''}` on "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, torch threads {torch_threads()}; total wall time {wall:.0f} s; "
        f"1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end"
        + (
            f" (above {os.cpu_count()}: other processes competed for the cores, every timing is slower "
            "than on an idle machine). "
            if max(load) > (os.cpu_count() or 1)
            else f" (not above the {os.cpu_count()} cores). "
        )
        + "Latencies are per single query; p50/p95 in milliseconds. Timings depend on the machine and its "
        "load: compare rows of the same run.",
    ]
    for title, note, rows in sections:
        lines += ["", f"## {title}", "", note.strip(), "", markdown_table(rows)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
