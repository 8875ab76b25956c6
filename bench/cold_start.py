"""App cold start: seconds from `python app.py [--index DIR]` to the first HTTP answer on its port, and to the
first search's answer.

That span covers imports, loading the index and models, the warm-up requests and Gradio's start,
i.e. what a user waits for after a restart (the index itself is already built); with no index and an empty
cache, the first search also waits for the bundled demo catalog's index to be built (a hosted demo's first
start).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def launched_app(
    index_dir: Path | None, timeout: float = 300.0, env: dict[str, str] | None = None, args: Sequence[str] = (),
    root: Path = REPO_ROOT,
) -> Iterator[tuple[str, float]]:
    """Run the app on a free localhost port; yield its URL and the seconds it took to answer.

    `index_dir` None starts it with no index option (the demo catalog); `env` adds to the environment (a
    catalog to index at start-up, an upload TTL, an empty cache folder, ...); `args` adds options; `root`: the
    copy of the code whose `app.py` runs (a baseline's, to compare with).
    """
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    command = [sys.executable, "app.py", *(["--index", str(index_dir)] if index_dir else []), "--host", "127.0.0.1"]
    command += ["--port", str(port), *args]
    url = f"http://127.0.0.1:{port}/"
    # output goes to a file, not a pipe: a chatty app never blocks on a full pipe
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                if time.perf_counter() - start > timeout:
                    raise TimeoutError(f"app did not answer within {timeout:.0f} s")
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"app exited with {process.returncode}: {log.read()[-2000:]}")
                try:
                    with urllib.request.urlopen(url, timeout=2):
                        break
                except OSError:
                    time.sleep(0.2)
            yield url, time.perf_counter() - start
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def app_cold_start(index_dir: Path, timeout: float = 300.0) -> float:
    """Seconds from launch to the first HTTP answer (the app is stopped again)."""
    with launched_app(index_dir, timeout) as (_url, seconds):
        return seconds


def wait_until_ready(url: str, timeout: float = 300.0, full: bool = False) -> float:
    """Poll the app's `status` API until its product index is ready (a build at start runs in the
    background), with `full` until the default index replaced the demo's quick one; the seconds waited.
    Raises TimeoutError, or RuntimeError when the index is missing."""
    from gradio_client import Client

    start = time.perf_counter()
    client = Client(url, verbose=False, download_files=False)
    while time.perf_counter() - start < timeout:
        state = client.predict(api_name="/status")
        if state["product_index"] == "ready" and not (full and state.get("improving")):
            return time.perf_counter() - start
        if state["product_index"] == "missing":
            raise RuntimeError(f"the app has no product index: {state['detail']}")
        time.sleep(1.0)
    raise TimeoutError(f"the product index was not ready within {timeout:.0f} s")


def first_search(query: Path, index_dir: Path | None = None, empty_cache: bool = True) -> tuple[float, float]:
    """Launch the app, wait until its product index is ready, search `query` (30 results, scope category);
    the seconds from launch to the page's first answer and to the search's answer. `empty_cache` starts it
    with a fresh `LOOKALIKE_CACHE` (a first start: the demo index is built meanwhile)."""
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as cache:
        env = {"LOOKALIKE_CACHE": cache} if empty_cache else {}
        start = time.perf_counter()
        with launched_app(index_dir, timeout=600.0, env=env) as (url, page_s):
            wait_until_ready(url, timeout=600.0)
            found = Client(url, verbose=False, download_files=False).predict(
                handle_file(str(query)), 30, "category", api_name="/search"
            )
            if len(found["results"]) != 30:
                raise RuntimeError(f"the first search gave {len(found['results'])} results, not 30")
            return page_s, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    """`python bench/cold_start.py --query PHOTO [--index DIR] [--runs 3] [--keep-cache]`: launch to page and
    launch to first search, per run. With no index the app serves the bundled demo catalog, built at start."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--query", type=Path, required=True, help="a photo the catalog does not hold")
    parser.add_argument("--index", type=Path, help="a built index (default: the demo catalog, built at start)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep-cache", action="store_true", help="use the usual cache (a restart)")
    args = parser.parse_args(argv)
    for run in range(1, args.runs + 1):
        page_s, search_s = first_search(args.query, args.index, empty_cache=not args.keep_cache)
        print(f"run {run}: page {page_s:.1f} s, first 30-result search {search_s:.1f} s after launch", flush=True)


if __name__ == "__main__":
    main()
