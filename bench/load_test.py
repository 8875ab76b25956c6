"""Load test: N concurrent `gradio_client` users against the app on localhost, through its JSON API.

Each client sends one product search and one face verification. Prints p50/p95 per endpoint and the
error count, beside a single-client baseline measured in the same run (how much queueing costs), and
the wall time of `--searches` concurrent search calls alone.
Run: python bench/load_test.py --index index [--clients 50] [--searches 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.cold_start import launched_app
from lookalike.paths import data_dir
from model_zoo import DEFAULT_FACE_MODEL, get_face_cfg


def _one_user(url: str, query: Path, face1: Path | None, face2: Path | None) -> dict[str, float | str]:
    from gradio_client import Client, handle_file

    timings: dict[str, float | str] = {}
    try:
        client = Client(url, verbose=False, download_files=False)
        start = time.perf_counter()
        found = client.predict(handle_file(str(query)), 30, "category", api_name="/search")
        timings["search_ms"] = 1000 * (time.perf_counter() - start)
        assert len(found["results"]) == 30, f"{len(found['results'])} results"
        if face1 is not None and face2 is not None:
            start = time.perf_counter()
            verdict = client.predict(handle_file(str(face1)), handle_file(str(face2)), api_name="/verify")
            timings["verify_ms"] = 1000 * (time.perf_counter() - start)
            assert verdict["threshold"] == get_face_cfg(DEFAULT_FACE_MODEL).threshold
    except Exception as exc:  # a load test counts failures instead of stopping at the first
        timings["error"] = f"{type(exc).__name__}: {exc}"
    return timings


def run(url: str, clients: int, verify: bool = True) -> list[dict]:
    root = data_dir()
    queries = sorted((root / "products").glob("*/*.jpg"))[::97]
    faces = sorted((root / "faces").glob("*/*_0001.jpg"))
    jobs = [(url, queries[i % len(queries)], faces[i % len(faces)] if verify else None,
             faces[(i + 1) % len(faces)] if verify else None) for i in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda job: _one_user(*job), jobs))


def summarise(name: str, results: list[dict]) -> list[str]:
    rows = []
    errors = [r["error"] for r in results if "error" in r]
    for key in ("search_ms", "verify_ms"):
        values = [r[key] for r in results if key in r]
        if values:
            p50, p95 = np.percentile(values, [50, 95])
            rows.append(f"| {name} | {key[:-3]} | {len(results)} | {p50:.0f} | {p95:.0f} | {len(errors)} |")
    for error in errors[:5]:
        rows.append(f"|  | error | {error[:100]} | | | |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("index"))
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--searches", type=int, default=20, help="concurrent search calls timed alone")
    args = parser.parse_args()
    with launched_app(args.index) as (url, cold_s):
        single = run(url, 1)
        start = time.perf_counter()
        searches = run(url, args.searches, verify=False)
        searches_wall = time.perf_counter() - start
        start = time.perf_counter()
        loaded = run(url, args.clients)
        wall = time.perf_counter() - start
    print(f"app cold start {cold_s:.1f} s; {args.searches} concurrent searches done in {searches_wall:.2f} s "
          f"({sum('error' in r for r in searches)} errors); {args.clients} clients done in {wall:.1f} s\n")
    print("| run | endpoint | clients | p50_ms | p95_ms | errors |\n|---|---|---|---|---|---|")
    print("\n".join(summarise("1 client (baseline)", single) + summarise(f"{args.clients} clients", loaded)))
    base = np.median([r["search_ms"] for r in single if "search_ms" in r] or [np.nan])
    under = np.median([r["search_ms"] for r in loaded if "search_ms" in r] or [np.nan])
    print(f"\nsearch p50 under load / single client: {under / base:.1f}x")


if __name__ == "__main__":
    main()
