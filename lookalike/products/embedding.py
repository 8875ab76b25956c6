"""Embed every readable photo of a catalog, using the cache, and list the ones that could not be read.

One bad file never stops a build: it is recorded with the loader's reason and left out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from lookalike.images.cache import EmbeddingCache, file_sha256
from lookalike.images.loading import ImageError
from lookalike.images.thumbnails import remember
from lookalike.products.catalog import CatalogItem

if TYPE_CHECKING:
    from model_zoo.product_embedders import ProductEmbedder

Progress = Callable[[int, int], None]  # (photos done, photos in all)
DECODE_THREADS = 2
BATCHES_AHEAD = 2


@dataclass
class EmbeddedCatalog:
    items: list[CatalogItem]
    vectors: np.ndarray
    digests: list[str]
    sizes: list[tuple[int, int]]
    skipped: list[dict[str, str]] = field(default_factory=list)
    cache_hits: int = 0


def _decode(embedder: ProductEmbedder, path: Path, digest: str) -> tuple[np.ndarray, dict[str, int]]:
    """A photo ready for the network, and its cache record (full upright width and height); its gallery
    thumbnail is made on the way, from the pixels already decoded."""
    image = embedder.preprocess.load(path)
    remember(image, digest)
    width, height = image.info["full_size"]
    return embedder.preprocess.array(image), {"width": width, "height": height}


def embed_catalog(
    items: list[CatalogItem],
    embedder: ProductEmbedder,
    batch_size: int | None = None,
    progress: Progress | None = None,
    show_bar: bool = True,
) -> EmbeddedCatalog:
    """Vectors for the readable items (in input order); cached vectors are reused, new ones stored.

    Photos are decoded and resized in DECODE_THREADS threads (PIL releases the GIL), up to
    BATCHES_AHEAD batches ahead of the network, so decoding overlaps the model instead of waiting
    for it."""
    cache = EmbeddingCache("product_embeddings", embedder.config, embedder.dim)
    digests: dict[Path, str] = {}
    skipped: list[dict[str, str]] = []
    for item in items:
        try:
            digests[item.path] = file_sha256(item.path)
        except OSError as exc:
            skipped.append({"path": str(item.path), "reason": f"cannot read file ({exc.strerror or exc})"})
    cached = cache.get_many(digests.values())
    entries = dict(cached)
    todo: dict[str, Path] = {}  # one photo per new digest: a duplicate is embedded once
    for item in items:
        digest = digests.get(item.path)
        if digest is not None and digest not in entries:
            todo.setdefault(digest, item.path)
    jobs = list(todo.items())
    step = batch_size or embedder.batch_size
    chunks = [jobs[start : start + step] for start in range(0, len(jobs), step)]
    bar = tqdm(total=len(items), desc="embedding", unit="img", disable=not show_bar)
    done = len(items) - len(jobs)
    bar.update(done)

    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        def submit(chunk: list[tuple[str, Path]]) -> list[tuple[str, Path, Future]]:
            return [(digest, path, pool.submit(_decode, embedder, path, digest)) for digest, path in chunk]

        upcoming = iter(chunks)
        in_flight = deque(submit(chunk) for chunk in islice(upcoming, BATCHES_AHEAD))
        while in_flight:
            batch = in_flight.popleft()
            following = next(upcoming, None)
            if following is not None:
                in_flight.append(submit(following))
            decoded: dict[str, tuple[np.ndarray, dict[str, int]]] = {}
            for digest, path, future in batch:
                try:
                    decoded[digest] = future.result()
                except ImageError as exc:
                    skipped.append({"path": str(path), "reason": str(exc)})
            if decoded:
                vectors = embedder.embed_prepared(np.stack([pixels for pixels, _ in decoded.values()]))
                fresh = {d: (v, record) for (d, (_, record)), v in zip(decoded.items(), vectors, strict=True)}
                cache.put_many(fresh)
                entries.update(fresh)
            done += len(batch)
            bar.update(len(batch))
            if progress is not None:
                progress(done, len(items))
    bar.close()
    kept = [item for item in items if digests.get(item.path) in entries]
    records = [entries[digests[item.path]][1] for item in kept]
    return EmbeddedCatalog(
        items=kept,
        vectors=np.stack([entries[digests[item.path]][0] for item in kept]).astype(np.float32)
        if kept
        else np.zeros((0, embedder.dim), np.float32),
        digests=[digests[item.path] for item in kept],
        sizes=[(record["width"], record["height"]) for record in records],
        skipped=skipped,
        cache_hits=sum(1 for item in kept if digests[item.path] in cached),
    )
