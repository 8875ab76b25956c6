"""Embed a catalog on Ray Data: the same decode and network code as a local build, in an actor pool.

`ray_engine(address)` returns an engine for `embed_catalog`. Without an address Ray starts on this
machine (and stops afterwards); with one (`ray://head:10001`, or `auto` inside a cluster) the job
joins that cluster. Each actor loads the index's embedder once and embeds `batch_size` photos per
call; a cluster with GPUs gets one actor per GPU running the network on it, a CPU cluster one actor
per LOOKALIKE_RAY_THREADS cores. Workers read the photos by path, so on a cluster the catalog must be on
storage every node mounts at the same path. Vectors come back to this process, which writes the
cache and the vector store, so a Ray build and a local one give the same index.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import ray
import ray.data

from lookalike.images.loading import ImageError
from lookalike.products.embedding import Batch, Engine, Job, decode, embed_decoded

if TYPE_CHECKING:
    from model_zoo.product_embedders import ProductEmbedder

THREADS_VARIABLE = "LOOKALIKE_RAY_THREADS"
DEFAULT_THREADS = 2  # onnxruntime threads per CPU actor: 2-core batches measured fastest (issue 11)


class EmbedActor:
    """One embedder per actor, built from the index's embedder config."""

    def __init__(self, config: dict, device: str) -> None:
        from model_zoo.product_embedders import create_embedder

        self.embedder = create_embedder(**config, device=device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        decoded, errors = {}, {}
        for digest, path in zip(batch["digest"], batch["path"], strict=True):
            try:
                decoded[str(digest)] = decode(self.embedder, Path(path), str(digest))
            except ImageError as exc:
                errors[str(digest)] = str(exc)
        fresh, queries = embed_decoded(self.embedder, decoded)
        empty = (np.zeros(self.embedder.dim, np.float32), {"width": 0, "height": 0})
        rows = [fresh.get(str(digest), empty) for digest in batch["digest"]]
        return {
            "digest": batch["digest"],
            "path": batch["path"],
            "vector": np.stack([vector for vector, _ in rows]),
            "query_vector": np.stack([queries.get(str(digest), empty[0]) for digest in batch["digest"]]),
            "width": np.asarray([record["width"] for _, record in rows], np.int64),
            "height": np.asarray([record["height"] for _, record in rows], np.int64),
            "error": np.asarray([errors.get(str(digest), "") for digest in batch["digest"]], dtype=object),
        }


def ray_engine(address: str | None = None) -> Engine:
    """An `embed_catalog` engine running on Ray (local when `address` is None)."""

    def run(jobs: list[Job], embedder: ProductEmbedder, step: int) -> Iterator[Batch]:
        if not jobs:
            return
        threads = int(os.environ.get(THREADS_VARIABLE, DEFAULT_THREADS))
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"LOOKALIKE_THREADS": str(threads)}})
        try:
            gpus = int(ray.cluster_resources().get("GPU", 0))
            cpus = int(ray.cluster_resources().get("CPU", 1))
            actors = gpus or max(1, cpus // threads)
            dataset = ray.data.from_items([{"digest": digest, "path": str(path)} for digest, path in jobs])
            embedded = dataset.map_batches(
                EmbedActor,
                fn_constructor_kwargs={"config": embedder.config, "device": "cuda" if gpus else "cpu"},
                batch_size=step,
                batch_format="numpy",
                concurrency=actors,
                num_gpus=1 if gpus else 0,
                num_cpus=0 if gpus else threads,
            )
            for batch in embedded.iter_batches(batch_size=step, batch_format="numpy"):
                fresh, queries, skipped = {}, {}, []
                for digest, path, vector, query, width, height, error in zip(
                    batch["digest"], batch["path"], batch["vector"], batch["query_vector"], batch["width"],
                    batch["height"], batch["error"], strict=True,
                ):
                    if error:
                        skipped.append({"path": str(path), "reason": str(error)})
                    else:
                        record = {"width": int(width), "height": int(height)}
                        fresh[str(digest)] = (np.asarray(vector, np.float32), record)
                        queries[str(digest)] = np.asarray(query, np.float32)
                yield len(batch["digest"]), fresh, queries, skipped
        finally:
            if started_here:
                ray.shutdown()

    return run
