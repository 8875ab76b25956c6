"""The bench's measurements of the real services: the index, the embedder, search and verify.

Each function returns table rows; `bench/run.py` puts them in the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.ann import time_queries
from bench.face_verify_latency import percentiles
from bench.seed_bruteforce import seed_search, write_seed_db
from lookalike.paths import data_dir
from lookalike.products.parts.head_view import read_head_views
from lookalike.products.results import QueryCues
from lookalike.vectors.neighbours import mean_recall, nearest

if TYPE_CHECKING:
    from lookalike.products.search import ProductSearcher


def ensure_index(index_dir: Path) -> str:
    """Build the shared catalog's index when missing (embeddings come from the cache when present)."""
    from lookalike.products.build import build_index
    from lookalike.products.index import index_exists, load_index

    if index_exists(index_dir):
        manifest = load_index(index_dir).manifest
        return (
            f"Index {index_dir}: {manifest.items} photos, {manifest.model}, "
            f"{manifest.store['kind']} store, trees={manifest.store.get('trees')}."
        )
    start = time.perf_counter()
    report = build_index(data_dir() / "products", index_dir, show_bar=False)
    return (
        f"Index built for this run from {data_dir() / 'products'}: {report['items']} photos in "
        f"{time.perf_counter() - start:.0f} s ({report['cache_hits']} embeddings from the cache)."
    )


def spread_paths(searcher: ProductSearcher, count: int) -> list[str]:
    """`count` catalog photos spread evenly over the index (every category gets its share)."""
    paths = searcher.index.rows.column("path")
    return paths[:: max(1, len(paths) // count)][:count]


def seed_vs_index(index_dir: Path, tmp: Path, runs: int) -> list[dict]:
    """Seed's SQLite brute force vs the searcher on the same query vectors; ratio of p50 latencies."""
    from lookalike.products.search import ProductSearcher

    searcher = ProductSearcher.load(index_dir)
    ids, vectors = searcher.index.store.vectors()
    picks = np.linspace(0, len(vectors) - 1, runs).astype(int)
    queries = vectors[picks]
    _, truth = nearest(vectors, queries, 30)
    db = write_seed_db(vectors, tmp / "seed.sqlite")
    views = read_head_views(searcher.index.folder) if searcher.part("head_view") else {}  # what its head reads
    cues = {int(pick): QueryCues({"head_view": views[int(ids[pick])]} if views else {}) for pick in picks}

    def ours(scope: str) -> Callable[[int], list[int]]:
        return lambda pick: [h.id for h in searcher.search_vector(vectors[pick], 30, scope, cues[pick]).results]

    measured = {
        "seed: SQLite read + brute-force Euclidean": time_queries(lambda q: seed_search(db, q, 30), queries),
        "ours, scope all: Annoy + exact re-rank": time_queries(ours("all"), picks),
        "ours, scope category (the app's default)": time_queries(ours("category"), picks),
    }
    seed_p50 = float(np.percentile(measured["seed: SQLite read + brute-force Euclidean"][1], 50))
    rows = []
    for name, (found, times) in measured.items():
        p50 = float(np.percentile(times, 50))
        rows.append(
            {
                "search": name,
                "catalog": len(vectors),
                "queries": len(queries),
                "recall@30 vs exact (whole catalog)": round(mean_recall(found, truth), 4),
                "p50_ms": round(p50, 3),
                "p95_ms": round(float(np.percentile(times, 95)), 3),
                "seed p50 / this p50": round(seed_p50 / p50, 1),
            }
        )
    return rows


def embed_throughput(index_dir: Path, batch_sizes: tuple[int, ...], photos: int = 32) -> list[dict]:
    """Images per second through the index's embedder, decode excluded."""
    from lookalike.images.loading import load_image
    from lookalike.products.search import ProductSearcher

    searcher = ProductSearcher.load(index_dir)
    paths = spread_paths(searcher, photos)
    images = [load_image(p) for p in paths]
    embedder = searcher.embedder
    embedder.embed(images[:2])  # warm-up
    rows = []
    for size in batch_sizes:
        start = time.perf_counter()
        for first in range(0, len(images), size):
            embedder.embed(images[first : first + size])
        seconds = time.perf_counter() - start
        rows.append(
            {
                "batch": size,
                "images": len(images),
                "images_per_s": round(len(images) / seconds, 2),
                "ms_per_image": round(1000 * seconds / len(images), 1),
                "config": str(embedder.config),
            }
        )
    return rows


def product_query_latency(index_dir: Path, runs: int) -> list[dict]:
    from lookalike.products.search import ProductSearcher

    searcher = ProductSearcher.load(index_dir)
    paths = spread_paths(searcher, runs)
    cycle = iter(paths * 2)
    p50, p95 = percentiles(lambda: searcher.search(next(cycle), 30), runs)
    return [
        {
            "path": "product query (photo -> top 30, scope category)",
            "runs": runs,
            "p50_ms": round(p50, 1),
            "p95_ms": round(p95, 1),
        }
    ]


def face_verify_latency(runs: int) -> list[dict]:
    from lookalike.evaluation.face_pairs import read_lfw_pairs
    from lookalike.faces.verify import FaceVerifier

    faces = data_dir() / "faces"
    pair = next(p for p in read_lfw_pairs(faces / "pairs.txt") if p.same)
    verifier = FaceVerifier()
    verifier.warm_up()
    try:
        p50, p95 = percentiles(lambda: verifier.verify(faces / pair.image1, faces / pair.image2), runs)
    finally:
        verifier.close()
    return [
        {
            "path": f"face verify ({verifier.model}, two 250x250 LFW photos)",
            "runs": runs,
            "p50_ms": round(p50, 1),
            "p95_ms": round(p95, 1),
        }
    ]
