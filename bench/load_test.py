"""Load test: N concurrent `gradio_client` users against the app on localhost, through its JSON API.

Each client sends one product search and one face verification. Prints p50/p95 per endpoint and the
error count, beside a single-client baseline measured in the same run (how much queueing costs), and
the wall time of `--searches` concurrent search calls alone.
With `--update-catalog CSV`, the loaded run is then repeated while `lookalike build CSV --update --out INDEX`
runs beside the app, until the app serves the updated index (its `status` API reports a new generation):
the p95 during the change is printed next to the quiet one, and every failed request is counted.
Run: python bench/load_test.py --index index [--clients 50] [--searches 20] [--update-catalog items.csv]
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.cold_start import launched_app
from lookalike.paths import data_dir
from model_zoo import DEFAULT_FACE_MODEL, get_face_cfg


def _data_uri(path: Path) -> dict:
    """A photo inlined as a data: URI in a FileData payload: one request, no separate upload."""
    data = base64.b64encode(path.read_bytes()).decode()
    return {"path": None, "url": f"data:image/jpeg;base64,{data}", "meta": {"_type": "gradio.FileData"}}


def _call(client, url: str, api: str, payload: list) -> dict:
    """POST /gradio_api/call/NAME, then read the event stream: what `curl` does (see docs/api.md)."""
    event = client.post(f"{url}gradio_api/call/{api}", json={"data": payload}).json()["event_id"]
    stream = client.get(f"{url}gradio_api/call/{api}/{event}").text
    if "event: complete" not in stream:
        raise RuntimeError(stream.strip().splitlines()[-1][:200])
    return json.loads(stream.split("data:", 2)[-1])[0]


def _one_user(
    url: str, query: Path, face1: Path | None, face2: Path | None, http: bool, ready: threading.Barrier
) -> dict[str, float | str]:
    """One search, then one verify (when faces are given), through gradio_client or plain HTTP. Every user
    connects first and all start together, so client set-up is not timed as server latency."""
    timings: dict[str, float | str] = {}
    try:
        if http:
            client = httpx.Client(timeout=120)
            search = lambda: _call(client, url, "search", [_data_uri(query), 30, "category"])  # noqa: E731
            verify = lambda: _call(  # noqa: E731  (plain HTTP names every argument)
                client, url, "verify", [_data_uri(face1), _data_uri(face2), DEFAULT_FACE_MODEL, -1.0, False]
            )
        else:
            from gradio_client import Client, handle_file

            # http:// on localhost: no TLS, so no certificate store to load for each request (the client made a
            # fresh TLS context per request, much of its CPU on the 2 cores the server also needs;
            # docs/experiments/app-under-load.md); no analytics
            client = Client(url, verbose=False, download_files=False, ssl_verify=False, analytics_enabled=False)
            search = lambda: client.predict(handle_file(str(query)), 30, "category", api_name="/search")  # noqa: E731
            verify = lambda: client.predict(handle_file(str(face1)), handle_file(str(face2)), api_name="/verify")  # noqa: E731
        ready.wait()
        start = time.perf_counter()
        found = search()
        timings["search_ms"] = 1000 * (time.perf_counter() - start)
        assert found["results"], "no results"
        if face1 is not None and face2 is not None:
            start = time.perf_counter()
            verdict = verify()
            timings["verify_ms"] = 1000 * (time.perf_counter() - start)
            assert verdict["threshold"] == get_face_cfg(DEFAULT_FACE_MODEL).threshold
    except Exception as exc:  # a load test counts failures instead of stopping at the first
        ready.abort()  # nobody waits for a user that will never arrive
        timings["error"] = f"{type(exc).__name__}: {exc}"
    return timings


def run(url: str, clients: int, verify: bool = True, http: bool = False) -> tuple[list[dict], float]:
    """Each user's timings, and the wall time from the common start to the last answer."""
    root = data_dir()
    queries = sorted((root / "products").glob("*/*.jpg"))[::97]
    faces = sorted((root / "faces").glob("*/*_0001.jpg"))
    jobs = [(url, queries[i % len(queries)], faces[i % len(faces)] if verify else None,
             faces[(i + 1) % len(faces)] if verify else None, http) for i in range(clients)]
    started: list[float] = []
    ready = threading.Barrier(clients, action=lambda: started.append(time.perf_counter()))
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda job: _one_user(*job, ready), jobs))
    return results, time.perf_counter() - (started[0] if started else time.perf_counter())


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


def _generation(url: str) -> str | None:
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False).predict(api_name="/status")["generation"]


def during_update(url: str, index: Path, catalog: Path, clients: int) -> tuple[list[dict], int]:
    """The loaded run, repeated while an update of `index` from `catalog` is built and picked up: every
    user's timings, and how many runs it took."""
    before = _generation(url)
    build = subprocess.Popen([sys.executable, "-m", "lookalike", "build", str(catalog), "--update", "--out",
                              str(index)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    results, rounds = [], 0
    while build.poll() is None or _generation(url) == before:
        if build.poll() not in (None, 0):
            raise RuntimeError(f"the update failed: {build.stderr.read()[-500:]}")
        results += run(url, clients)[0]
        rounds += 1
    return results, rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("index"))
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--searches", type=int, default=20, help="concurrent search calls timed alone")
    parser.add_argument("--update-catalog", type=Path, help="a catalog (manifest CSV) to update the index from "
                        "while loaded")
    args = parser.parse_args()
    rows, walls = [], []
    with launched_app(args.index) as (url, cold_s):
        for http, client in ((True, "plain HTTP"), (False, "gradio_client")):
            rows += summarise(f"1 client, {client}", run(url, 1, http=http)[0])
            searches, seconds = run(url, args.searches, verify=False, http=http)
            walls.append(f"{args.searches} concurrent searches, {client}: {seconds:.2f} s wall, "
                         f"{sum('error' in r for r in searches)} errors")
            loaded, seconds = run(url, args.clients, http=http)
            walls.append(f"{args.clients} clients (search + verify), {client}: {seconds:.1f} s wall")
            rows += summarise(f"{args.clients} clients, {client}", loaded)
        if args.update_catalog:
            changing, rounds = during_update(url, args.index, args.update_catalog, args.clients)
            walls.append(f"{args.clients} clients during an update: {rounds} rounds until it was served")
            rows += summarise(f"{args.clients} clients during an update, gradio_client", changing)
    print(f"app cold start {cold_s:.1f} s")
    print("\n".join(walls) + "\n")
    print("| run | endpoint | clients | p50_ms | p95_ms | errors |\n|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
