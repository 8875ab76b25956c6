"""How soon an admin's change is searched: the app on a copy of the bundled demo catalog (`--catalog NEW_DIR
--admin-token ...`), photos of a product the catalog lacks added one at a time through the API, each timed from
its acknowledgement until a search with that same photo finds it first; then each removed, timed until a
search no longer returns it.

    python bench/manage_latency.py [--changes 5] [--json bench/out/manage_latency.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.fault_manage import TOKEN, App  # noqa: E402
from lookalike.paths import data_dir  # noqa: E402


def _until(check, timeout: float = 120.0) -> float:
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout:
            return float("inf")
        time.sleep(0.2)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from gradio_client import Client, handle_file

    photos = sorted((data_dir() / "products" / "juice").glob("grocery_train_God-Morgon-Orange-Juice_*.jpg"))
    photos = photos[-args.changes:]  # the demo catalog holds some of the first ones
    with tempfile.TemporaryDirectory(prefix="manage-latency-") as temporary:
        work = Path(temporary)
        app = App(work / "catalog", work / "index", work)
        url, first_start = app.start(timeout=900)
        client = Client(url, verbose=False, download_files=False, headers={"Authorization": f"Bearer {TOKEN}"})
        items = client.predict(api_name="/catalog_status")["items"]

        def first(photo: Path) -> str:
            return client.predict(handle_file(str(photo)), 5, "category", api_name="/search")["results"][0]["photo"]

        added, removed = [], []
        for photo in photos:
            answer = client.predict(handle_file(str(photo)), "juice", photo.stem, "2.00", "", "GM-OJ", True,
                                    api_name="/add_item")
            item = answer["item_id"]
            added.append((item, _until(lambda: Path(first(photo)).stem == item)))  # noqa: B023
        def gone(item: str, photo: Path) -> bool:
            hits = client.predict(handle_file(str(photo)), 30, "all", api_name="/search")["results"]
            return all(Path(hit["photo"]).stem != item for hit in hits)

        for (item, _), photo in zip(added, photos, strict=True):
            client.predict(item, api_name="/remove_item")
            removed.append(_until(lambda: gone(item, photo)))  # noqa: B023
        app.kill()
    seconds = [s for _, s in added]
    report = {"catalog_items": items, "first_start_s": round(first_start, 1),
              "add_to_found_s": [round(s, 2) for s in seconds], "remove_to_gone_s": [round(s, 2) for s in removed],
              "add_median_s": round(statistics.median(seconds), 2), "add_max_s": round(max(seconds), 2),
              "remove_median_s": round(statistics.median(removed), 2), "remove_max_s": round(max(removed), 2)}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
