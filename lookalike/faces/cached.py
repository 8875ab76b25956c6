"""Face embeddings of photo files, cached by content, for evaluations and training on many photos.

The photos are taken as face-centred crops (LFW): the face nearest the centre is the labelled person
(LFW photos often hold a larger bystander; on folds 1-2 choosing the largest face instead cost 2.6
points of accuracy), and a photo where no detector finds a face is embedded from a centred box rather
than dropped; its record says which detector found the face ("centre" for none).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.faces.pipeline import PIPELINE_VERSION
from lookalike.faces.process_pool import EmbedJob, ParallelFacePipeline
from lookalike.images.cache import EmbeddingCache, file_sha256
from lookalike.images.loading import load_image
from model_zoo.face_embedders import Weights, get_face_cfg

BATCH = 32  # images handed to the pipeline at once; also how often the cache is written


@dataclass
class EmbeddedFiles:
    vectors: np.ndarray  # [N, dim], in the order of the paths
    detectors: list[str]  # which detector found each photo's face
    embedded: int  # photos the cache lacked
    seconds: float  # time spent embedding them


def face_cache(model: str, weights: Weights = None, namespace: str = "face_embeddings") -> EmbeddingCache:
    """The cache of `model` (with `weights`) under the current pipeline version, keyed by what makes the
    embedding (`FaceCfg.embedding_key`: not its thresholds); `namespace` keeps another record of the same
    photos apart (`photo_faces`: every face of a photo, not only the centred one)."""
    cfg = get_face_cfg(model)
    key: dict[str, Any] = cfg.embedding_key()
    key.update(name=model, pipeline=PIPELINE_VERSION)
    if weights is not None:
        stat = Path(weights).stat()
        key["weights"] = [str(Path(weights).resolve()), stat.st_size, stat.st_mtime_ns]
    return EmbeddingCache(namespace, key, cfg.dim)


def embed_files(
    paths: list[Path], model: str, weights: Weights = None, processes: int | None = None, quiet: bool = False
) -> EmbeddedFiles:
    """Embeddings of the face in each photo; photos already cached are not decoded again."""
    cache = face_cache(model, weights)
    hashes = [file_sha256(p) for p in paths]
    entries = cache.get_many(hashes)
    todo = list({h: p for p, h in zip(paths, hashes, strict=True) if h not in entries}.items())
    start = time.perf_counter()
    if todo:
        with ParallelFacePipeline(model, weights, processes) as pipeline:
            for first in range(0, len(todo), BATCH):
                batch = todo[first : first + BATCH]
                jobs = [EmbedJob(load_image(path), str(path), centred=True) for _, path in batch]
                fresh = {
                    sha: (result.embedding, {"detector": result.face.detector})
                    for (sha, _), result in zip(batch, pipeline.run(jobs), strict=True)
                }
                cache.put_many(fresh)
                entries.update(fresh)
                if not quiet:
                    done = first + len(batch)
                    rate = done / (time.perf_counter() - start)
                    print(f"embedded {done}/{len(todo)} images ({rate:.1f}/s)", file=sys.stderr, flush=True)
    return EmbeddedFiles(
        vectors=np.stack([entries[h][0] for h in hashes]).astype(np.float32),
        detectors=[entries[h][1]["detector"] for h in hashes],
        embedded=len(todo),
        seconds=time.perf_counter() - start,
    )
