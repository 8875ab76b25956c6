"""Embed every readable photo of a catalog, using the cache, and list the ones that could not be read.

One bad file never stops a build: it is recorded with the loader's reason and left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from tqdm import tqdm

from lookalike.images.cache import EmbeddingCache, file_sha256
from lookalike.images.loading import ImageError, load_image
from lookalike.products.catalog import CatalogItem

if TYPE_CHECKING:
    from model_zoo.product_embedders import ProductEmbedder

Progress = Callable[[int, int], None]  # (photos done, photos in all)


@dataclass
class EmbeddedCatalog:
    items: list[CatalogItem]
    vectors: np.ndarray
    digests: list[str]
    sizes: list[tuple[int, int]]
    skipped: list[dict[str, str]] = field(default_factory=list)
    cache_hits: int = 0


def embed_catalog(
    items: list[CatalogItem],
    embedder: ProductEmbedder,
    batch_size: int = 32,
    progress: Progress | None = None,
    show_bar: bool = True,
) -> EmbeddedCatalog:
    """Vectors for the readable items (in input order); cached vectors are reused, new ones stored."""
    cache = EmbeddingCache("product_embeddings", embedder.config, embedder.dim)
    digests: dict[Path, str] = {}
    skipped: list[dict[str, str]] = []
    for item in items:
        try:
            digests[item.path] = file_sha256(item.path)
        except OSError as exc:
            skipped.append({"path": str(item.path), "reason": f"cannot read file ({exc.strerror or exc})"})
    cached = {d: (v, r["width"], r["height"]) for d, (v, r) in cache.get_many(digests.values()).items()}
    entries: dict[str, tuple[np.ndarray, int, int]] = dict(cached)
    pending: dict[str, Image.Image] = {}
    bar = tqdm(total=len(items), desc="embedding", unit="img", disable=not show_bar)
    reported = 0

    def report(done: int) -> None:
        nonlocal reported
        bar.update(done - reported)
        reported = done
        if progress is not None:
            progress(done, len(items))

    def flush(done: int) -> None:
        vectors = embedder.embed(list(pending.values()), batch_size)
        fresh = {d: (v, im.width, im.height) for (d, im), v in zip(pending.items(), vectors, strict=True)}
        cache.put_many({d: (v, {"width": w, "height": h}) for d, (v, w, h) in fresh.items()})
        entries.update(fresh)
        pending.clear()
        report(done)

    for done, item in enumerate(items, start=1):
        digest = digests.get(item.path)
        if digest is None or digest in entries or digest in pending:
            continue
        try:
            pending[digest] = load_image(item.path)
        except ImageError as exc:
            skipped.append({"path": str(item.path), "reason": str(exc)})
        if len(pending) >= batch_size:
            flush(done)
    if pending:
        flush(len(items))
    report(len(items))
    bar.close()
    kept = [item for item in items if digests.get(item.path) in entries]
    return EmbeddedCatalog(
        items=kept,
        vectors=np.stack([entries[digests[item.path]][0] for item in kept]).astype(np.float32)
        if kept
        else np.zeros((0, embedder.dim), np.float32),
        digests=[digests[item.path] for item in kept],
        sizes=[entries[digests[item.path]][1:] for item in kept],
        skipped=skipped,
        cache_hits=sum(1 for item in kept if digests[item.path] in cached),
    )
