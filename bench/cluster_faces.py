"""Face clustering at scale: 100,000 faces (the shared LFW photos' real embeddings plus synthetic ones, as
bench/ann.py makes them) clustered the way `cluster_faces` does, then an update of 1,000 new faces; embedding
excluded (the real faces come from the cache), peak memory from the kernel (ru_maxrss).

    python -m bench.cluster_faces --faces 100000 --new 1000

Timed steps: the neighbour graph and the merging of a first clustering; an update's neighbour search of the
new faces, its merging into the existing (frozen) people, and writing its vector store (Annoy, the people
index's trees), which a real `--update` also pays. On a shared machine the times are under load: each step
is reported in wall seconds and in this process's CPU seconds (user + system, all its threads), with the load
average beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.ann import clustered_unit_vectors
from lookalike.faces import people_build
from lookalike.faces.people_cluster import DEFAULT_K, DEFAULT_THRESHOLD, Constraints, agglomerate, edges_of
from lookalike.faces.photo_faces import embed_photos
from lookalike.vectors.knn_graph import graph_recall, knn_graph
from lookalike.vectors.stores.annoy_store import AnnoyStore
from model_zoo.face_embedders import DEFAULT_FACE_MODEL

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


def real_faces() -> np.ndarray:
    paths = sorted(FACES.glob("*/*.jpg"))
    photos = embed_photos(paths, DEFAULT_FACE_MODEL, quiet=True).photos
    vectors = np.asarray([f.vector for p in photos if p for f in p.faces], np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=1_000)
    parser.add_argument("--out", type=Path, default=Path("bench/out/cluster_faces.json"))
    args = parser.parse_args()
    real = real_faces()
    synthetic = clustered_unit_vectors(args.faces + args.new - len(real), 512, seed=1, clusters=20_000)
    everything = np.concatenate([real, synthetic])
    order = np.random.default_rng(0).permutation(len(everything))
    base, new = everything[order[: args.faces]], everything[order[args.faces :]]
    rss_before = peak_mb()
    row: dict = {"faces": len(base), "real": len(real), "new": len(new), "load_before": os.getloadavg()[0]}

    start, cpu = time.perf_counter(), time.process_time()
    neighbours = knn_graph(base, DEFAULT_K)[0]
    row["graph_s"] = round(time.perf_counter() - start, 2)
    row["graph_cpu_s"] = round(time.process_time() - cpu, 2)
    heads, tails = edges_of(neighbours)
    start, cpu = time.perf_counter(), time.process_time()
    labels = agglomerate(base, heads, tails, DEFAULT_THRESHOLD)
    row["merge_s"] = round(time.perf_counter() - start, 2)
    row["merge_cpu_s"] = round(time.process_time() - cpu, 2)
    row["cluster_s"] = round(row["graph_s"] + row["merge_s"], 2)
    row["clusters"] = int(labels.max()) + 1
    row["graph_recall_at_10"] = round(graph_recall(base, neighbours), 4)
    row["peak_rss_mb"] = round(peak_mb(), 1)
    row["peak_rss_above_inputs_mb"] = round(peak_mb() - rss_before, 1)

    units = np.concatenate([base, new])
    fresh = np.arange(len(base), len(units))
    start, cpu = time.perf_counter(), time.process_time()
    heads, tails = people_build._graph(units, fresh, DEFAULT_K, update=True)
    frozen = Constraints(frozen={i: int(label) for i, label in enumerate(labels.tolist())})
    labels_after = agglomerate(units, heads, tails, DEFAULT_THRESHOLD, frozen)
    row["update_cluster_s"] = round(time.perf_counter() - start, 2)
    row["update_cluster_cpu_s"] = round(time.process_time() - cpu, 2)
    row["update_joined_existing"] = int(np.isin(labels_after[fresh], labels_after[: len(base)]).sum())
    with tempfile.TemporaryDirectory() as tmp:
        store = AnnoyStore(Path(tmp) / "annoy", 512, people_build.TREES)
        start, cpu = time.perf_counter(), time.process_time()
        store.add(list(range(len(units))), units, ["face"] * len(units))
        store.persist()
        row["update_store_write_s"] = round(time.perf_counter() - start, 2)
        row["update_store_write_cpu_s"] = round(time.process_time() - cpu, 2)
        store.close()
    row["update_total_s"] = round(row["update_cluster_s"] + row["update_store_write_s"], 2)
    row["load_after"] = os.getloadavg()[0]
    row["cpus"] = os.cpu_count()
    print(json.dumps(row, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
