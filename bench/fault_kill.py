"""Crash safety of `lookalike build`, measured: real builds killed with SIGKILL at random moments.

A small real catalog (a few categories of the shared photos) is indexed once; then, `--kills` times: the
catalog changes (photos added and removed), a build of it starts as a subprocess (`--update` and full
rebuilds alternate) and is killed with SIGKILL after a random delay spread over a build's measured duration
(seeded). After each kill the script checks that the index at --out loads and answers a search
(`ProductSearcher.load` + one search), that it is exactly the previous index or exactly the new one (its
catalog rows are one catalog's, its generation matches, and manifest rows == store vectors == catalog
rows: never a mix), and that the embedding cache passes SQLite's integrity check; then it runs the next
build to the end and checks that it succeeded and left no temporary folder, parked backup or lock file.

Meanwhile `--clients` threads search through a `LiveSearcher` following the folder, as a server would: the
summary counts their failed requests and the longest time from a build's end to its index being served.

    python bench/fault_kill.py [--kills 20] [--per-category 20] [--seed 0] [--clients 4]

Prints one line per kill and the summary "20 kills: N index intact, M next builds succeeded". Takes a while
(two builds a kill); not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(REPO_ROOT))

from lookalike.paths import data_dir  # noqa: E402
from lookalike.products.index import IndexManifest, locate  # noqa: E402
from lookalike.products.live import LiveSearcher  # noqa: E402
from lookalike.products.search import ProductSearcher  # noqa: E402
from lookalike.vectors import index_folder  # noqa: E402

BUILD_ARGS = ["--size", "160", "--no-flip", "--head-model", "none", "--trees", "8", "--json"]


@dataclass
class Catalog:
    """The catalog folder (symlinks to the shared photos) and the photos not in it yet."""

    root: Path
    pool: list[Path]
    rng: random.Random

    def paths(self) -> set[str]:
        return {str(path.resolve()) for path in self.root.rglob("*.jpg")}  # as the build stores them

    def change(self, add: int, remove: int) -> None:
        for _ in range(min(add, len(self.pool))):
            photo = self.pool.pop(self.rng.randrange(len(self.pool)))
            (self.root / photo.parent.name / photo.name).symlink_to(photo)
        present = sorted(self.root.rglob("*.jpg"))
        for path in self.rng.sample(present, min(remove, len(present) - 3)):
            path.unlink()


def make_catalog(source: Path, folder: Path, categories: int, per_category: int, rng: random.Random) -> Catalog:
    chosen = sorted(d for d in source.iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= 2 * per_category)
    pool: list[Path] = []
    for category in chosen[:categories]:
        photos = sorted(category.glob("*.jpg"))
        (folder / category.name).mkdir(parents=True)
        for photo in photos[:per_category]:
            (folder / category.name / photo.name).symlink_to(photo)
        pool += photos[per_category : 2 * per_category]
    return Catalog(folder, pool, rng)


def build_command(catalog: Path, out: Path, update: bool) -> list[str]:
    return [sys.executable, "-m", "lookalike", "build", str(catalog), "--out", str(out), *BUILD_ARGS,
            *(["--update"] if update else [])]


def run_build(catalog: Path, out: Path, update: bool, env: dict) -> tuple[int, float, str]:
    began = time.monotonic()
    done = subprocess.run(build_command(catalog, out, update), env=env, capture_output=True, text=True,
                          cwd=REPO_ROOT)
    return done.returncode, time.monotonic() - began, done.stderr.strip()[-300:]


def leftovers(out: Path) -> list[str]:
    """Temporary folders, a parked backup or a lock file left beside the index."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def cache_ok(cache: Path) -> tuple[bool, int]:
    """Whether every cache file passes SQLite's integrity check, and how many were set aside as damaged."""
    ok = True
    for path in cache.rglob("*.sqlite"):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            ok &= db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        except sqlite3.DatabaseError:
            ok = False
        finally:
            db.close()
    return ok, len(list(cache.rglob("*.damaged-*")))


@dataclass
class Check:
    intact: bool
    which: str  # "old", "new" or what went wrong
    detail: str = ""


def check_index(out: Path, embedder, query: Path, old: set[str], new: set[str], old_generation: str | None) -> Check:
    """The index at `out` loads, searches, is one build's (old or new) and agrees with its generation."""
    try:
        searcher = ProductSearcher.load(out, embedder=embedder)
    except Exception as exc:  # every failure is a finding
        return Check(False, "unloadable", f"{type(exc).__name__}: {exc}")
    try:
        index = searcher.index
        counts = (index.manifest.items, index.store.count(), len(index.rows))
        paths = set(index.rows.column("path"))
        which = "old" if paths == old else "new" if paths == new else "MIXED"
        hits = len(searcher.search(query, top_k=5).results)
        generation = index_folder.generation(out)
        agrees = (generation == old_generation) == (which == "old")
        intact = len(set(counts)) == 1 and which != "MIXED" and hits == 5 and agrees
        return Check(intact, which, "" if intact else f"counts {counts}, {hits} hits, generation agrees: {agrees}")
    except Exception as exc:
        return Check(False, "search failed", f"{type(exc).__name__}: {exc}")
    finally:
        searcher.close()


@dataclass
class Clients:
    """Threads searching through a LiveSearcher, as a server's requests would."""

    live: LiveSearcher
    query: Path
    pause: float
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with self.live.searcher() as searcher:
                    assert len(searcher.search(self.query, top_k=5).results) == 5
                self.requests += 1
            except Exception as exc:  # every failed request counts
                self.failures.append(f"{type(exc).__name__}: {exc}")
            self.stop.wait(self.pause)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--categories", type=int, default=3)
    parser.add_argument("--per-category", type=int, default=20, help="photos of each category at first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clients", type=int, default=4, help="threads searching through a LiveSearcher")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between one client's requests")
    parser.add_argument("--source", type=Path, default=data_dir() / "products")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="fault_kill-"))
    env = {**os.environ, "LOOKALIKE_CACHE": str(work / "cache")}
    os.environ["LOOKALIKE_CACHE"] = env["LOOKALIKE_CACHE"]
    catalog = make_catalog(args.source, work / "catalog", args.categories, args.per_category, rng)
    out = work / "index"
    query = sorted(catalog.root.rglob("*.jpg"))[0].resolve()

    code, seconds, err = run_build(catalog.root, out, False, env)
    if code != 0:
        sys.exit(f"the first build failed: {err}")
    durations = {False: [seconds], True: []}
    print(f"first build: {len(catalog.paths())} photos in {seconds:.1f} s", flush=True)
    from model_zoo.product_embedders import create_embedder

    embedder = create_embedder(**IndexManifest.read(locate(out)).embedder_config(locate(out)))
    live = LiveSearcher(out, embedder=embedder)
    clients = Clients(live, query, args.pause)
    threads = [threading.Thread(target=clients.run, daemon=True) for _ in range(args.clients)]
    for thread in threads:
        thread.start()

    intact = succeeded = after_swap = finished_first = cache_good = clean = 0
    served_delays: list[float] = []
    for n in range(args.kills):
        update = n % 2 == 0
        old, old_generation = catalog.paths(), index_folder.generation(out)
        catalog.change(add=3, remove=2)
        new = catalog.paths()
        typical = statistics.median(durations[update] or durations[not update])
        delay = rng.uniform(0.02, 1.05) * typical
        build = subprocess.Popen(build_command(catalog.root, out, update), env=env, cwd=REPO_ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            build.wait(timeout=delay)
            finished_first += 1
        except subprocess.TimeoutExpired:
            os.kill(build.pid, signal.SIGKILL)
            build.wait()
        check = check_index(out, embedder, query, old, new, old_generation)
        intact += check.intact
        after_swap += check.which == "new"
        good, damaged = cache_ok(work / "cache")
        cache_good += good and not damaged
        left_by_kill = leftovers(out)

        before_next = index_folder.generation(out)
        code, seconds, err = run_build(catalog.root, out, update, env)
        ended = time.monotonic()
        if code == 0:
            durations[update].append(seconds)
        rest = leftovers(out)
        after = check_index(out, embedder, query, set(), new, before_next)
        ok = code == 0 and after.intact and after.which == "new"
        succeeded += ok
        clean += not rest
        target = index_folder.generation(out)
        swapped = (out / index_folder.GENERATION).stat().st_mtime  # written just before the swap
        while live.generation != target and time.monotonic() - ended < 30:
            time.sleep(0.05)
        served_delays.append(live.served_since - swapped if live.generation == target else float("inf"))
        kind = "update" if update else "full"
        moment = "finished before the kill" if build.returncode == 0 else f"killed at {delay:5.1f} s of ~{typical:.0f}"
        next_build = "ok" if ok else f"FAILED {err} {after.detail}"
        print(f"{n + 1:2d}. {kind:6s} {moment:28s} index {check.which:4s} {'intact' if check.intact else 'BROKEN'}"
              f"{' ' + check.detail if check.detail else ''}; left {left_by_kill or 'nothing'}; cache "
              f"{'ok' if good and not damaged else 'DAMAGED'}; next build {next_build} in {seconds:.1f} s, left "
              f"{rest or 'nothing'}; served {served_delays[-1]:.1f} s after its swap", flush=True)

    clients.stop.set()
    for thread in threads:
        thread.join()
    live.close()
    kills = args.kills - finished_first
    print(f"\n{args.kills} kills: {intact} index intact, {succeeded} next builds succeeded "
          f"({kills} killed mid-build, {finished_first} finished first; {after_swap} found the new index, "
          f"{args.kills - after_swap} the old; cache intact after {cache_good}; {clean} next builds left nothing "
          f"behind)")
    print(f"live clients: {clients.requests} requests, {len(clients.failures)} failed; updates served at most "
          f"{max(served_delays):.1f} s after their swap; {live.reloads} reloads")
    for failure in clients.failures[:5]:
        print(f"  failed: {failure}")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder: {work}")


if __name__ == "__main__":
    main()
