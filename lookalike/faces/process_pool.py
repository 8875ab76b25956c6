"""Embed several photos at once in helper processes, one photo per process at a time.

A photo's face work is a chain of small steps (MTCNN's three networks and the Python between them,
dlib's landmarks and chip, the embedding), much of it holding the GIL, so threads barely overlap two
photos; processes do (`bench/face_verify_latency.py`; docs/experiments/inference-runtimes.md). Each helper
runs torch on one thread: MTCNN with two intra-op threads on a busy 2-core machine was many times slower a
photo than on one thread, and leaving the face work to helpers keeps the caller's own torch settings untouched.

How helpers start. While the caller has a single thread (a server at start-up), they are forked right
away and inherit the caller's loaded pipeline: no second import of torch and dlib, no second model
load (forked helpers made the app's cold start far shorter than spawned ones).
Once other threads run, a fork could copy a lock another thread holds, so helpers are spawned
instead and load their own pipeline.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from PIL import Image

from lookalike.faces.pipeline import FaceEmbedding, FacePipeline
from model_zoo.face_embedders import DEFAULT_FACE_MODEL, Weights


@dataclass(frozen=True)
class EmbedJob:
    """One photo to embed, as `FacePipeline.embed` takes it."""

    image: Image.Image
    name: str
    face_index: int | None = None
    centred: bool = False
    every_face: bool = False


_HELPER: FacePipeline | None = None  # each helper process's own pipeline


def _start_helper(model: str, weights: Weights, inherited: FacePipeline | None) -> None:
    import torch

    torch.set_num_threads(1)  # the helper shares the machine with the caller's thread
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    global _HELPER
    _HELPER = inherited or FacePipeline(model, weights)


def _start_method() -> str:
    """"fork" on Linux while only this thread runs, else "spawn" (macOS system libraries are not fork-safe
    once loaded, and Windows cannot fork)."""
    forkable = sys.platform.startswith("linux")
    return "fork" if forkable and threading.active_count() == 1 else "spawn"


def _exit_with_parent(parent: int) -> None:
    """A killed server cannot shut its pool down; its helpers would wait forever without this."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _helper_embed(job: EmbedJob) -> FaceEmbedding:
    assert _HELPER is not None, "helper process started without its pipeline"
    return _run(_HELPER, job)


def _helper_ready() -> None:
    assert _HELPER is not None, "helper process started without its pipeline"


def _helper_warm_up() -> None:
    assert _HELPER is not None, "helper process started without its pipeline"
    _HELPER.warm_up()


def _run(pipeline: FacePipeline, job: EmbedJob) -> FaceEmbedding:
    return pipeline.embed(job.image, job.name, job.face_index, job.centred, job.every_face)


class ParallelFacePipeline:
    """A `FacePipeline` here (`processes=1`) or in `processes` helper processes holding their own."""

    def __init__(
        self, model: str = DEFAULT_FACE_MODEL, weights: Weights = None, processes: int | None = None
    ) -> None:
        self.local = FacePipeline(model, weights)  # loads here first: bad weights fail in the caller
        self.processes = processes or min(2, os.cpu_count() or 1)
        self._pool = None
        self.start_method = _start_method()
        if self.processes > 1:
            forked = self.start_method == "fork"
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context(self.start_method),
                initializer=_start_helper,
                initargs=(model, weights, self.local if forked else None),
            )
            if forked:  # fork every helper now, while no other thread can hold a lock
                for future in [self._pool.submit(_helper_ready) for _ in range(self.processes)]:
                    future.result()

    def run(self, jobs: Sequence[EmbedJob]) -> list[FaceEmbedding]:
        """Embed every job, results in order; errors surface in job order (first photo first)."""
        if self._pool is None:
            return [_run(self.local, job) for job in jobs]
        futures: list[Future[FaceEmbedding]] = [self._pool.submit(_helper_embed, job) for job in jobs]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()

    def warm_up(self) -> None:
        """Start the helpers and run every stage once, before the first real request."""
        if self._pool is None:
            self.local.warm_up()
            return
        for future in [self._pool.submit(_helper_warm_up) for _ in range(self.processes)]:
            future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ParallelFacePipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
