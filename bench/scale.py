"""The vector stores at scale, measured in one run: `python bench/scale.py [--size 1000000] [--catalog]`.

Prints markdown tables (and writes them to bench/out/scale.md; docs/benchmarks.md holds the recorded ones):
  1. Milvus Lite's index types (FLAT, IVF_FLAT, HNSW) on --index-size synthetic vectors: which one the
     `milvus` store uses on Lite is chosen from this table.
  2. --size synthetic vectors (the clustered generator of bench/ann.py, 10 categories) in the Annoy store
     (float32, and float16 vectors) and in Milvus Lite, through the stores' own code (`add` + `persist`):
     build time, files on disk, resident memory of a process that opens the store and queries it,
     p50/p95 per query, recall@30 against exact search, and ratios against the Annoy store (the baseline).
     Each store is opened and queried in a fresh process, so its memory is its own.
  3. --catalog: the shared catalog built twice, Annoy with the local engine and Milvus Lite with
     `--engine ray`, both with an empty embedding cache; the same query photos' top-30 compared.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from bench.ann import clustered_unit_vectors, resident_mb  # noqa: E402
from lookalike.evaluation.report import markdown_table  # noqa: E402
from lookalike.vectors.neighbours import mean_recall, nearest  # noqa: E402
from lookalike.vectors.stores import create_store, open_store, parse_store  # noqa: E402
from lookalike.vectors.stores.milvus_store import INDEXES  # noqa: E402

K = 30
CATEGORIES = 10
TREES = 32


def synthetic(size: int, dim: int, queries: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(base, queries, categories): one draw, split, so the queries share the base's clusters."""
    vectors = clustered_unit_vectors(size + queries, dim, seed=0)
    categories = [f"c{i % CATEGORIES}" for i in range(size)]
    return vectors[:size], vectors[size:], categories


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def build_store(address: str, folder: Path, base: np.ndarray, categories: list[str]) -> tuple[dict, float]:
    """Write the store as an index build does (add, then persist); returns (manifest entry, seconds)."""
    spec = parse_store(address)
    start = time.perf_counter()
    store = create_store(spec, folder, base.shape[1], TREES, "scale")
    store.add(np.arange(len(base)), base, categories)
    entry = store.persist()
    seconds = time.perf_counter() - start
    store.close()
    return entry, seconds


def query_worker(folder: Path, entry_file: Path, queries_file: Path) -> None:
    """Run in a fresh process: open the store, answer every query alone, print JSON."""
    before = resident_mb()
    store = open_store(folder, json.loads(entry_file.read_text()))
    queries = np.load(queries_file)
    found, times = [], []
    for query in queries:
        start = time.perf_counter()
        found.append(list(store.search(query, K).ids))
        times.append(1000 * (time.perf_counter() - start))
    print(json.dumps({"found": [[int(i) for i in f] for f in found], "times": times,
                      "rss_mb": resident_mb(), "rss_open_mb": resident_mb() - before}))


def measure(folder: Path, entry: dict, queries: np.ndarray, tmp: Path) -> dict:
    entry_file, queries_file = tmp / "entry.json", tmp / "queries.npy"
    entry_file.write_text(json.dumps(entry))
    np.save(queries_file, queries)
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(folder), str(entry_file), str(queries_file)],
        capture_output=True, text=True, check=True, cwd=REPO_ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def row(name: str, build_s: float, size_mb: float, result: dict, truth: np.ndarray) -> dict:
    times = np.asarray(result["times"])
    return {"store": name, "build_s": round(build_s, 1), "disk_mb": round(size_mb, 1),
            "rss_mb": round(result["rss_mb"], 1), "p50_ms": round(float(np.percentile(times, 50)), 2),
            "p95_ms": round(float(np.percentile(times, 95)), 2),
            f"recall@{K}": round(mean_recall(result["found"], truth), 4)}


def milvus_index_section(size: int, dim: int, queries: int, tmp: Path) -> list[dict]:
    base, probe, categories = synthetic(size, dim, queries)
    _, truth = nearest(base, probe, K)
    rows = []
    for index in INDEXES:
        folder = tmp / f"lite-{index}"
        folder.mkdir()
        entry, seconds = build_store(f"milvus://{folder}/v.db?index={index}", folder, base, categories)
        rows.append({"index": index, **row(f"Milvus Lite {index}", seconds, folder_mb(folder),
                                           measure(folder, entry, probe, tmp), truth)})
    return rows


def store_section(size: int, dim: int, queries: int, tmp: Path) -> list[dict]:
    base, probe, categories = synthetic(size, dim, queries)
    _, truth = nearest(base, probe, K)
    rows = []
    annoy = tmp / "annoy-index"
    entry, seconds = build_store("annoy", annoy, base, categories)
    rows.append(row("annoy float32 (default)", seconds, folder_mb(annoy), measure(annoy, entry, probe, tmp), truth))
    # float16 differs only in the stored vectors (the forests are built from float32 either way)
    half = tmp / "annoy-f16"
    shutil.copytree(annoy, half)
    np.save(half / "annoy" / "vectors.npy", np.load(annoy / "annoy" / "vectors.npy").astype(np.float16))
    rows.append(row("annoy float16", seconds, folder_mb(half),
                    measure(half, {**entry, "dtype": "float16"}, probe, tmp), truth))
    del base
    lite = tmp / "lite"
    lite.mkdir()
    base, _, _ = synthetic(size, dim, queries)
    entry, seconds = build_store(f"milvus://{lite}/v.db", lite, base, categories)
    del base
    rows.append(row(f"Milvus Lite {entry['index']}", seconds, folder_mb(lite), measure(lite, entry, probe, tmp), truth))
    first = rows[0]
    for values in rows:
        values["build vs annoy"] = round(values["build_s"] / first["build_s"], 2)
        values["p50 vs annoy"] = round(values["p50_ms"] / first["p50_ms"], 2)
    return rows


def catalog_section(tmp: Path) -> tuple[list[dict], str]:
    """Annoy (local engine) vs Milvus Lite (Ray engine) on the shared catalog, the GroceryStore val photos
    as queries (a catalog without them, as in the instance-retrieval protocol)."""
    import os

    from bench.protocol import grocery_val_split
    from lookalike.products.build import build_index
    from lookalike.products.search import ProductSearcher

    catalog, _, queries = grocery_val_split(tmp)
    builds = {}
    for name, options in {"annoy, local engine": {"store": "annoy"},
                          "Milvus Lite, --engine ray": {"store": "milvus", "engine": "ray"}}.items():
        os.environ["LOOKALIKE_CACHE"] = str(tmp / f"cache-{len(builds)}")  # every photo embedded again
        out = tmp / f"index-{len(builds)}"
        report = build_index(catalog, out, show_bar=False, **options)
        searcher = ProductSearcher.load(out)
        found = {scope: [[hit.id for hit in searcher.search(q, K, scope).results] for q in queries]
                 for scope in ("all", "category")}
        searcher.index.close()
        builds[name] = (report, found)
    (first, (report_a, found_a)), (second, (report_b, found_b)) = builds.items()
    table = []
    for scope in ("all", "category"):
        overlap = [len(set(a) & set(b)) / K for a, b in zip(found_a[scope], found_b[scope], strict=True)]
        table.append({"scope": scope, "queries": len(queries), "mean top-30 overlap": round(float(np.mean(overlap)), 4),
                      "min overlap": round(float(np.min(overlap)), 4),
                      f"{first} build s": report_a["build_seconds"], f"{second} build s": report_b["build_seconds"]})
    note = (f"{report_a['items']} catalog photos; {first}: {report_a['images_per_second']} photos/s; "
            f"{second}: {report_b['images_per_second']} photos/s (Ray start-up included).")
    return table, note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--index-size", type=int, default=100_000, help="vectors for the Milvus index-type table")
    parser.add_argument("--catalog", action="store_true", help="also compare Annoy and Milvus+Ray on ../shared")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out" / "scale.md")
    parser.add_argument("--worker", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        query_worker(*args.worker)
        return 0
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "a").mkdir()
        sections.append((f"Milvus Lite index types, {args.index_size:,} x {args.dim}",
                         "Chooses the index the `milvus` store uses on Lite.",
                         milvus_index_section(args.index_size, args.dim, args.queries, work / "a")))
        (work / "b").mkdir()
        sections.append((f"{args.size:,} x {args.dim} synthetic vectors, {CATEGORIES} categories, {TREES} trees",
                         "Each store opened and queried in a fresh process (rss_mb: that process).",
                         store_section(args.size, args.dim, args.queries, work / "b")))
        if args.catalog:
            (work / "c").mkdir()
            table, note = catalog_section(work / "c")
            sections.append(("Shared catalog: Annoy (local build) vs Milvus Lite (Ray build)", note, table))
    text = "\n\n".join(f"## {title}\n\n{note}\n\n{markdown_table(rows)}" for title, note, rows in sections)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)  # bench/out/ is git-ignored, so absent in a clone
    args.out.write_text(f"# Vector stores at scale (bench/scale.py)\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
