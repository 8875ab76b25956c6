"""Nearest-neighbour search: Annoy (trees x search_k) and faiss HNSW against exact BLAS search.

Every method answers the same single queries one at a time (as the app does), and its top-k is
scored against the exact top-k (recall@k). Vectors are unit length, so inner product, cosine and
Euclidean distance give the same ranking; Annoy uses its "angular" metric, as the index does.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from lookalike.vectors.neighbours import build_annoy, mean_recall, nearest


@dataclass
class AnnRow:
    dataset: str
    method: str
    setting: str
    build_s: float
    size_mb: float
    rss_mb: float
    recall: float
    p50_ms: float
    p95_ms: float

    def row(self, k: int) -> dict[str, object]:
        values = asdict(self)
        values[f"recall@{k}"] = round(values.pop("recall"), 4)
        return {key: round(v, 3) if isinstance(v, float) else v for key, v in values.items()}


def resident_mb() -> float:
    """This process's resident set size (VmRSS), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def clustered_unit_vectors(
    count: int, dim: int, seed: int, clusters: int = 1000, latent: int = 24
) -> np.ndarray:
    """Unit vectors from clusters in a `latent`-dimensional space, mapped linearly into `dim`.

    Real image embeddings have a low intrinsic dimension; isotropic noise in all `dim` directions
    would make every neighbour about as far as any other, where no index beats a scan.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, latent), dtype=np.float32)
    mixing = rng.standard_normal((latent, dim), dtype=np.float32)
    vectors = np.empty((count, dim), np.float32)
    for start in range(0, count, 100_000):  # chunks keep the temporaries small
        stop = min(count, start + 100_000)
        points = centres[rng.integers(0, clusters, stop - start)]
        points += 0.5 * rng.standard_normal(points.shape, dtype=np.float32)
        vectors[start:stop] = points @ mixing
        vectors[start:stop] += 0.5 * rng.standard_normal((stop - start, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def time_queries(
    search: Callable[[np.ndarray], Sequence[int]], queries: np.ndarray
) -> tuple[list, np.ndarray]:
    """Run each query alone; returns the results and the per-query latencies in ms."""
    results, times = [], np.empty(len(queries))
    for i, query in enumerate(queries):
        start = time.perf_counter()
        results.append(search(query))
        times[i] = 1000 * (time.perf_counter() - start)
    return results, times


def _row(
    dataset: str,
    method: str,
    setting: str,
    build_s: float,
    size_mb: float,
    rss_mb: float,
    found: list,
    truth: np.ndarray,
    times: np.ndarray,
) -> AnnRow:
    return AnnRow(
        dataset,
        method,
        setting,
        build_s,
        size_mb,
        rss_mb,
        mean_recall(found, truth),
        float(np.percentile(times, 50)),
        float(np.percentile(times, 95)),
    )


def exact_rows(dataset: str, base: np.ndarray, queries: np.ndarray, k: int) -> tuple[AnnRow, np.ndarray]:
    """The exact search's own row, and its answers (the ground truth for every other method)."""
    found, times = time_queries(lambda q: nearest(base, q, k)[1][0], queries)
    truth = np.array(found)
    return _row(
        dataset,
        "exact BLAS",
        "matmul+argpartition",
        0.0,
        base.nbytes / 2**20,
        base.nbytes / 2**20,
        found,
        truth,
        times,
    ), truth


def annoy_rows(
    dataset: str,
    base: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    trees: Iterable[int],
    search_ks: Iterable[int],
) -> list[AnnRow]:
    """Build one index per tree count, then query it at each search_k (-1 = Annoy's default, trees x k)."""
    k = truth.shape[1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_trees in trees:
            path = Path(tmp) / f"{n_trees}.ann"
            start = time.perf_counter()
            build_annoy(base, np.arange(len(base)), n_trees, path, n_jobs=-1)
            build_s = time.perf_counter() - start
            before = resident_mb()
            index = AnnoyIndex(base.shape[1], "angular")
            index.load(str(path))  # memory-mapped, as the searcher loads it
            for search_k in search_ks:
                found, times = time_queries(
                    lambda q, i=index, s=search_k: i.get_nns_by_vector(q, k, s), queries
                )
                rows.append(
                    _row(
                        dataset,
                        "annoy",
                        f"trees={n_trees} search_k={search_k}",
                        build_s,
                        path.stat().st_size / 2**20,
                        resident_mb() - before,
                        found,
                        truth,
                        times,
                    )
                )
            index.unload()
    return rows


def faiss_rows(
    dataset: str,
    base: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    ef_searches: Iterable[int],
    m: int = 32,
) -> list[AnnRow]:
    """faiss HNSW (inner product), when faiss-cpu is installed; no rows otherwise."""
    try:
        import faiss
    except ImportError:
        return []
    k = truth.shape[1]
    before = resident_mb()
    start = time.perf_counter()
    index = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(base)
    build_s = time.perf_counter() - start
    size_mb = faiss.serialize_index(index).nbytes / 2**20
    rows = []
    for ef in ef_searches:
        index.hnsw.efSearch = max(ef, k)
        found, times = time_queries(lambda q: index.search(q[None, :], k)[1][0], queries)
        rows.append(
            _row(
                dataset,
                "faiss HNSW",
                f"M={m} efSearch={max(ef, k)}",
                build_s,
                size_mb,
                resident_mb() - before,
                found,
                truth,
                times,
            )
        )
    return rows


def index_default_rows(
    dataset: str, base: np.ndarray, queries: np.ndarray, truth: np.ndarray
) -> list[AnnRow]:
    """The product index's own policy: its default tree count, over-fetched candidates, the search effort
    the build measures (`lookalike.vectors.ann_tuning`, counted in build_s), exact re-rank."""
    from lookalike.products.options import DEFAULT_TREES
    from lookalike.vectors.ann_tuning import tune_search_k
    from lookalike.vectors.neighbours import annoy_top_k
    from lookalike.vectors.stores.annoy_store import candidate_count

    k = truth.shape[1]
    wanted = candidate_count(k)

    def search(query: np.ndarray) -> list[int]:
        return annoy_top_k(index, base, query, k, wanted, search_k)[0].tolist()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "default.ann"
        start = time.perf_counter()
        build_annoy(base, np.arange(len(base)), DEFAULT_TREES, path, n_jobs=-1)
        search_k = wanted * tune_search_k(base, DEFAULT_TREES, wanted)["search_k_per_candidate"]
        build_s = time.perf_counter() - start
        index = AnnoyIndex(base.shape[1], "angular")
        index.load(str(path))
        before = resident_mb()
        found, times = time_queries(search, queries)
        size_mb = path.stat().st_size / 2**20
        row = _row(
            dataset,
            "annoy + re-rank (index default)",
            f"trees={DEFAULT_TREES} fetch={wanted} search_k={search_k} (tuned)",
            build_s,
            size_mb,
            resident_mb() - before,
            found,
            truth,
            times,
        )
        index.unload()
    return [row]
