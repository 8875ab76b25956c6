"""Embed every readable photo of a catalog, using the cache, and list the ones that could not be read.

One bad file never stops a build: it is recorded with the loader's reason and left out. The photos
not yet embedded go to an engine: threads in this process (`local_engine`), or an actor pool on
Ray (`lookalike.products.ray_engine`); both decode and embed with the functions below.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from lookalike.images.cache import EmbeddingCache, Entry, file_sha256
from lookalike.images.loading import ImageError, load_image
from lookalike.images.thumbnails import remember
from lookalike.products.catalog import CatalogItem

if TYPE_CHECKING:
    from model_zoo.product_embedders import ProductEmbedder

Progress = Callable[[int, int, str], None]  # (steps done, steps in all, what the steps are)
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


Job = tuple[str, Path]  # (sha256, path): one photo to embed
Batch = tuple[int, dict[str, Entry], list[dict[str, str]]]  # (photos done, fresh entries, skipped)
#: Runs the jobs `step` at a time and yields each batch's outcome (the local threads below, or Ray Data).
Engine = Callable[[list[Job], "ProductEmbedder", int], Iterator[Batch]]


def decode(embedder: ProductEmbedder, path: Path, digest: str) -> tuple[np.ndarray, dict[str, int]]:
    """A photo ready for the network, and its cache record (full upright width and height); its gallery
    thumbnail is made on the way, from the pixels already decoded. A large JPEG is decoded at a reduced scale
    (`draft`) that keeps both sides at least twice the network's input: the resize still sees plenty of pixels,
    the decode costs a fraction."""
    image = load_image(path, draft=embedder.preprocess.draft)
    remember(image, digest)
    width, height = image.info["full_size"]
    return embedder.preprocess.array(image), {"width": width, "height": height}


def embed_decoded(embedder: ProductEmbedder, decoded: dict[str, tuple[np.ndarray, dict[str, int]]]) -> dict[str, Entry]:
    """One network call over decoded photos: {digest: (vector, record)}."""
    if not decoded:
        return {}
    vectors = embedder.embed_prepared(np.stack([pixels for pixels, _ in decoded.values()]))
    return {digest: (vector, record) for (digest, (_, record)), vector in zip(decoded.items(), vectors, strict=True)}


def local_engine(jobs: list[Job], embedder: ProductEmbedder, step: int) -> Iterator[Batch]:
    """This process: photos decoded and resized in DECODE_THREADS threads (PIL releases the GIL), up to
    BATCHES_AHEAD batches ahead of the network, so decoding overlaps the model instead of waiting for it."""
    chunks = [jobs[start : start + step] for start in range(0, len(jobs), step)]
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        def submit(chunk: list[Job]) -> list[tuple[str, Path, Future]]:
            return [(digest, path, pool.submit(decode, embedder, path, digest)) for digest, path in chunk]

        upcoming = iter(chunks)
        in_flight = deque(submit(chunk) for chunk in islice(upcoming, BATCHES_AHEAD))
        while in_flight:
            batch = in_flight.popleft()
            following = next(upcoming, None)
            if following is not None:
                in_flight.append(submit(following))
            decoded, skipped = {}, []
            for digest, path, future in batch:
                try:
                    decoded[digest] = future.result()
                except ImageError as exc:
                    skipped.append({"path": str(path), "reason": str(exc)})
            yield len(batch), embed_decoded(embedder, decoded), skipped


def content_digests(items: list[CatalogItem]) -> tuple[dict[Path, str], list[dict[str, str]]]:
    """Each readable item's content digest by path (what caches and updates key photos on), and the files that
    cannot be read at all, listed as a build lists them."""
    digests: dict[Path, str] = {}
    skipped: list[dict[str, str]] = []
    for item in items:
        try:
            digests[item.path] = file_sha256(item.path)
        except OSError as exc:
            skipped.append({"path": str(item.path), "reason": f"cannot read file ({exc.strerror or exc})"})
    return digests, skipped


def embed_catalog(
    items: list[CatalogItem],
    embedder: ProductEmbedder,
    batch_size: int | None = None,
    progress: Progress | None = None,
    show_bar: bool = True,
    known: Callable[[Iterable[str]], dict[str, Entry]] | None = None,
    engine: Engine = local_engine,
) -> EmbeddedCatalog:
    """Vectors for the readable items (in input order). Vectors `known` already (an update's previous
    index: digests -> entries) and cached ones are reused; the rest are embedded by `engine` and cached."""
    from model_zoo.weights import fingerprint  # the embedder has loaded torch already

    cache = EmbeddingCache("product_embeddings", fingerprint(embedder.config), embedder.dim)
    digests, skipped = content_digests(items)
    known_entries = known(digests.values()) if known else {}
    cached = cache.get_many(d for d in digests.values() if d not in known_entries)
    entries = {**cached, **known_entries}
    todo: dict[str, Path] = {}  # one photo per new digest: a duplicate is embedded once
    for item in items:
        digest = digests.get(item.path)
        if digest is not None and digest not in entries:
            todo.setdefault(digest, item.path)
    bar = tqdm(total=len(items), desc="embedding", unit="img", disable=not show_bar)
    done = len(items) - len(todo)
    bar.update(done)
    for count, fresh, failed in engine(list(todo.items()), embedder, batch_size or embedder.batch_size):
        cache.put_many(fresh)
        entries.update(fresh)
        skipped.extend(failed)
        done += count
        bar.update(count)
        if progress is not None:
            progress(done, len(items), "embedding photo")
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
        cache_hits=sum(1 for item in kept if digests[item.path] in entries and digests[item.path] not in todo),
    )


def embed_again(
    embedded: EmbeddedCatalog,
    embedder: ProductEmbedder,
    show_bar: bool = True,
    known: Callable[[Iterable[str]], dict[str, Entry]] | None = None,
    engine: Engine = local_engine,
) -> np.ndarray:
    """Another embedder's vectors of photos already embedded once, row for row (a category head's second
    view); a photo this embedder cannot read is an error, since the rows would no longer line up."""
    again = embed_catalog(embedded.items, embedder, show_bar=show_bar, known=known, engine=engine)
    if len(again.items) != len(embedded.items):
        unread = "; ".join(f"{entry['path']} ({entry['reason']})" for entry in again.skipped[:5])
        more = f" and {len(again.skipped) - 5} more" if len(again.skipped) > 5 else ""
        raise ValueError(f"{embedder.name} could not read {unread}{more}, which the first embedder read")
    return again.vectors
