"""App cold start: seconds from `python app.py --index DIR` to the first HTTP answer on its port.

That span covers imports, loading the index and models, the warm-up requests and Gradio's start,
i.e. what a user waits for after a restart (the index itself is already built).
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
    index_dir: Path | None, timeout: float = 300.0, env: dict[str, str] | None = None, args: Sequence[str] = ()
) -> Iterator[tuple[str, float]]:
    """Run the app on a free localhost port; yield its URL and the seconds it took to answer.

    `index_dir` None starts it with no index option (the demo catalog); `env` adds to the environment (a
    catalog to index at start-up, an upload TTL, an empty cache folder, ...); `args` adds options.
    """
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    command = [sys.executable, "app.py", *(["--index", str(index_dir)] if index_dir else []), "--host", "127.0.0.1"]
    command += ["--port", str(port), *args]
    url = f"http://127.0.0.1:{port}/"
    # output goes to a file, not a pipe: a chatty app never blocks on a full pipe
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
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


def wait_until_ready(url: str, timeout: float = 300.0) -> float:
    """Poll the app's `status` API until its product index is ready (a build at start runs in the
    background); the seconds waited. Raises TimeoutError, or RuntimeError when the index is missing."""
    from gradio_client import Client

    start = time.perf_counter()
    client = Client(url, verbose=False, download_files=False)
    while time.perf_counter() - start < timeout:
        state = client.predict(api_name="/status")
        if state["product_index"] == "ready":
            return time.perf_counter() - start
        if state["product_index"] == "missing":
            raise RuntimeError(f"the app has no product index: {state['detail']}")
        time.sleep(1.0)
    raise TimeoutError(f"the product index was not ready within {timeout:.0f} s")
