"""Crash safety of catalog management, measured: the app killed with SIGKILL while an admin adds and removes.

A tiny catalog (copies of a few shared photos in a temporary folder) is served by the app with management on
(`--catalog DIR --admin-token ...`). Then, `--kills` times: a client adds photos (from a pool of shared photos)
and removes earlier ones through the JSON API, one change after the other, recording each acknowledged change;
after a random delay (seeded) the app is killed with SIGKILL, mid-request or mid-index-update. Checked then, on
disk: every acknowledged add is in the manifest with its photo, every acknowledged removal is not; every row's
photo decodes (no half-added item). The app is started again on the same folders: it must serve a search
(a restart that serves), and its index must catch up with the catalog (the lag redone at start: the index's
rows equal the catalog's, `catalog_status` not pending), with no photo left that no row names.

    python bench/fault_manage.py [--kills 20] [--seed 0] [--json bench/out/fault_manage.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.cold_start import free_port  # noqa: E402
from lookalike.images.loading import load_image  # noqa: E402
from lookalike.paths import data_dir  # noqa: E402
from lookalike.products.catalog_edit import _NEW_ID, MANIFEST  # noqa: E402

TOKEN = "fault-run-admin-token-7d2a"
CATEGORIES = ("milk", "juice", "shirt")


def _rows(catalog: Path) -> dict[str, dict]:
    with (catalog / MANIFEST).open(newline="") as handle:
        return {row["item_id"]: row for row in csv.DictReader(handle)}


class App:
    def __init__(self, catalog: Path, index: Path, work: Path) -> None:
        self.catalog, self.index, self.work = catalog, index, work
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 300.0) -> tuple[str, float]:
        port = free_port()
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "LOOKALIKE_CACHE": str(self.work / "cache"),
               "GRADIO_TEMP_DIR": str(self.work / "gradio")}
        started = time.perf_counter()
        with open(self.work / "app.log", "a") as log:  # the app keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "app.py", "--index", str(self.index), "--catalog", str(self.catalog),
                 "--admin-token", TOKEN, "--host", "127.0.0.1", "--port", str(port)], cwd=REPO_ROOT, env=env,
                stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        from gradio_client import Client

        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with {self.process.returncode}")
            try:
                client = Client(url, verbose=False, download_files=False)
                if client.predict(api_name="/status")["product_index"] == "ready":
                    return url, time.perf_counter() - started
            except Exception:
                pass
            time.sleep(1.0)
        raise TimeoutError("the app did not serve within the timeout")

    def kill(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _changes(url: str, pool: list[Path], rng: random.Random, acknowledged: list, in_flight: list,
             stop: threading.Event) -> None:
    """Add and remove through the API until the app dies; each answered change recorded, and the one asked for
    and not yet answered kept in `in_flight` (the kill may land before or after it is applied)."""
    from gradio_client import Client, handle_file

    try:
        client = Client(url, verbose=False, download_files=False, headers={"Authorization": f"Bearer {TOKEN}"})
        while not stop.is_set():
            added = [item for action, item in acknowledged if action == "add"]
            removed = {item for action, item in acknowledged if action == "remove"}
            alive = [item for item in added if item not in removed]
            if alive and rng.random() < 0.35:
                item = rng.choice(alive)
                in_flight[:] = [("remove", item)]
                client.predict(item, api_name="/remove_item")
                acknowledged.append(("remove", item))
            else:
                photo = pool.pop()
                in_flight[:] = [("add", None)]
                answer = client.predict(handle_file(str(photo)), photo.parent.name, photo.stem, "1.00", "",
                                        photo.stem, True, api_name="/add_item")
                acknowledged.append(("add", answer["item_id"]))
            in_flight.clear()
    except Exception as exc:  # the kill: the request in flight is not acknowledged
        if not stop.is_set():
            print(f"changes stopped before the kill: {exc!r}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-category", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    root = data_dir() / "products"
    photos = {category: sorted((root / category).glob("*.jpg")) for category in CATEGORIES}
    with tempfile.TemporaryDirectory(prefix="fault-manage-") as temporary:
        work = Path(temporary)
        catalog = work / "catalog"
        pool = []
        for category, found in photos.items():
            chosen = rng.sample(found, args.per_category + 60)
            (catalog / category).mkdir(parents=True)
            for photo in chosen[:args.per_category]:
                shutil.copy(photo, catalog / category / photo.name)
            pool += chosen[args.per_category:]
        rng.shuffle(pool)
        app = App(catalog, work / "index", work)
        url, seconds = app.start()
        print(f"first start (index built) in {seconds:.0f} s", flush=True)
        acknowledged: list[tuple[str, str]] = []
        results = []
        for kill in range(args.kills):
            stop = threading.Event()
            in_flight: list = []
            worker = threading.Thread(target=_changes, args=(url, pool, rng, acknowledged, in_flight, stop),
                                      daemon=True)
            before = len(acknowledged)
            worker.start()
            deadline = time.perf_counter() + 60
            while len(acknowledged) == before and worker.is_alive() and time.perf_counter() < deadline:
                time.sleep(0.05)  # the kill falls during changes: after the first is answered
            time.sleep(rng.uniform(0.2, 6.0))
            app.kill()
            stop.set()
            worker.join(30)
            rows = _rows(catalog)
            answered = len(acknowledged) - before
            unanswered = in_flight[0] if in_flight else None
            if unanswered and unanswered[0] == "remove" and unanswered[1] not in rows:
                acknowledged.append(unanswered)  # applied before the kill, unanswered: either outcome is allowed
            added = [item for action, item in acknowledged if action == "add"]
            removed = {item for action, item in acknowledged if action == "remove"}
            lost = [item for item in added if item not in removed and item not in rows]
            lost += [item for item in removed if item in rows]
            half = []
            for item, row in rows.items():
                try:
                    load_image(catalog / row["path"])
                except Exception:
                    half.append(item)
            try:
                url, seconds = app.start()
                from gradio_client import Client, handle_file

                client = Client(url, verbose=False, download_files=False,
                                headers={"Authorization": f"Bearer {TOKEN}"})
                served = bool(client.predict(handle_file(str(pool[-1])), 3, "all", api_name="/search")["results"])
                deadline = time.perf_counter() + 120
                while client.predict(api_name="/catalog_status")["index_pending"] and time.perf_counter() < deadline:
                    time.sleep(0.5)
                caught_up = not client.predict(api_name="/catalog_status")["index_pending"]
            except Exception as exc:
                served, caught_up, seconds = False, False, float("nan")
                print(f"restart failed: {exc}", flush=True)
            named = {(catalog / row["path"]).resolve() for row in _rows(catalog).values()}
            orphans = [p for p in catalog.glob("*/*") if _NEW_ID.match(p.stem) and p.resolve() not in named]
            result = {"kill": kill, "changes_acknowledged": answered,
                      "killed_during": unanswered[0] if unanswered else "between changes", "lost": lost,
                      "half_added": half, "restart_serves": served, "index_caught_up": caught_up,
                      "orphans_after_restart": len(orphans), "restart_s": round(seconds, 1)}
            results.append(result)
            print(json.dumps(result), flush=True)
        app.kill()
        summary = {"kills": args.kills, "acknowledged_changes": sum(r["changes_acknowledged"] for r in results),
                   "lost": sum(len(r["lost"]) for r in results),
                   "half_added": sum(len(r["half_added"]) for r in results),
                   "restarts_serving": sum(r["restart_serves"] for r in results),
                   "index_caught_up": sum(r["index_caught_up"] for r in results),
                   "orphans_after_restart": sum(r["orphans_after_restart"] for r in results),
                   "median_restart_s": sorted(r["restart_s"] for r in results)[len(results) // 2]}
        print(json.dumps(summary), flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"summary": summary, "kills": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
