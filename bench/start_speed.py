"""The app's start as a user meets it, this code against a baseline copy, started alternately (issue 37).

Per start: seconds from `python app.py` to the page's first HTTP answer, to the first 30-result product
search's answer (the index ready, `/status`), and to the first face verification's answer (the face model may
load after the page answers). `--index DIR` starts on a built index (a restart); without it each start gets an
empty `LOOKALIKE_CACHE` and serves the demo catalog, whose index it builds (a fresh clone's first start).

    python bench/start_speed.py --baseline /tmp/base --index IDX --rounds 3
    python bench/start_speed.py --baseline /tmp/base --rounds 2          # first starts, empty cache
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.cold_start import launched_app, wait_until_ready  # noqa: E402

QUERY = "products/dress/clothing_04f0b07f-4b9f-4c55-bc5d-b693658fb32c.jpg"  # held out of the demo catalog
FACES = ("lookalike/app/examples/astronaut.jpg", "lookalike/app/examples/astronaut_variant.jpg")


def one_start(root: Path, index: Path | None, query: Path) -> dict:
    """Launch `root`'s app; the seconds to the page, the first search and the first verify (after launch)."""
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as cache:
        env = {} if index else {"LOOKALIKE_CACHE": cache}
        start = time.perf_counter()
        with launched_app(index, timeout=900.0, env=env, root=root) as (url, page_s):
            client = Client(url, verbose=False, download_files=False)
            wait_until_ready(url, timeout=900.0)
            found = client.predict(handle_file(str(query)), 30, "category", api_name="/search")
            if len(found["results"]) != 30:
                raise RuntimeError(f"the first search gave {len(found['results'])} results")
            search_s = time.perf_counter() - start
            client.predict(handle_file(str(root / FACES[0])), handle_file(str(root / FACES[1])), api_name="/verify")
            verify_s = time.perf_counter() - start
    return {"page_s": round(page_s, 2), "search_s": round(search_s, 2), "verify_s": round(verify_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a copy of the code before the change")
    parser.add_argument("--index", type=Path, help="a built index (default: the demo catalog, empty cache)")
    parser.add_argument("--query", type=Path, help="a photo the catalog does not hold")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm-up", action="store_true", help="one untimed start of each tree first (exports)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from lookalike.paths import data_dir

    query = args.query or data_dir() / QUERY
    trees = {"new": REPO_ROOT, "base": args.baseline.resolve()}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    if args.warm_up and args.index:
        for name, root in trees.items():
            print("warm-up", name, json.dumps(one_start(root, args.index, query)), flush=True)
    load = [os.getloadavg()[0]]
    for round_ in range(args.rounds):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for name in order:
            runs[name].append(one_start(trees[name], args.index, query))
            print(round_ + 1, name, json.dumps(runs[name][-1]), f"load {os.getloadavg()[0]:.1f}", flush=True)
        load.append(os.getloadavg()[0])
    summary = {"index": str(args.index) if args.index else "demo, empty cache", "load": load, "runs": runs}
    for key in ("page_s", "search_s", "verify_s"):
        ratios = [a[key] / b[key] for a, b in zip(runs["new"], runs["base"], strict=True)]
        summary[key] = {"new_median": statistics.median(r[key] for r in runs["new"]),
                        "base_median": statistics.median(r[key] for r in runs["base"]),
                        "ratio_median": round(statistics.median(ratios), 3),
                        "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)]}
        print(key, json.dumps(summary[key]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
