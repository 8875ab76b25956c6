"""Embed every readable photo of a catalog, using the cache, and list the ones that could not be read.

One bad file never stops a build: it is recorded with the loader's reason and left out. The photos
not yet embedded go to an engine: threads in this process (`local_engine`), or an actor pool on
Ray (`lookalike.products.ray_engine`); both decode and embed with the functions below.

Each photo also gets its query-side vector: the photo as search embeds a query (the photo alone, where the
catalog's vectors average it with its mirror image: `ProductEmbedder.embed_prepared_sides`), from the same
network call. The build's similarity curves and in-catalog decision query the catalog with these, since a real
query is farther from the catalog than a catalog photo's mirror-averaged vector is (issue 38). They are cached
in the query embedder's own cache (its config: `query_config`), one vector per photo as for any embedder.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]  # (steps done, steps in all, what the steps are)
DECODE_THREADS = 2
BATCHES_AHEAD = 2


@dataclass
class EmbeddedCatalog:
    """The readable items' vectors (what the index stores and search compares), their digests and sizes, and
    `query_vectors`: the same photos as search embeds a query (None: the same as `vectors`)."""

    items: list[CatalogItem]
    vectors: np.ndarray
    digests: list[str]
    sizes: list[tuple[int, int]]
    skipped: list[dict[str, str]] = field(default_factory=list)
    cache_hits: int = 0
    query_vectors: np.ndarray | None = None

    @property
    def query_side(self) -> np.ndarray:
        """What the build's fits query the catalog with, row for row: `query_vectors`, else `vectors`."""
        return self.vectors if self.query_vectors is None else self.query_vectors


Job = tuple[str, Path]  # (sha256, path): one photo to embed
#: (photos done, fresh entries, their query-side vectors by digest, skipped)
Batch = tuple[int, dict[str, Entry], dict[str, np.ndarray], list[dict[str, str]]]
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


def embed_decoded(embedder: ProductEmbedder, decoded: dict[str, tuple[np.ndarray, dict[str, int]]]
                  ) -> tuple[dict[str, Entry], dict[str, np.ndarray]]:
    """One network call over decoded photos: {digest: (vector, record)}, and {digest: query-side vector} (the
    same vectors for an embedder without `embed_prepared_sides`: a stand-in, a projection)."""
    if not decoded:
        return {}, {}
    pixels = np.stack([pixels for pixels, _ in decoded.values()])
    sides = getattr(embedder, "embed_prepared_sides", None)
    vectors, queries = sides(pixels) if sides is not None else (embedder.embed_prepared(pixels),) * 2
    entries = {digest: (vector, record) for (digest, (_, record)), vector in zip(decoded.items(), vectors, strict=True)}
    return entries, dict(zip(decoded, queries, strict=True))


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
            yield len(batch), *embed_decoded(embedder, decoded), skipped


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
    query_side: bool = True,
) -> EmbeddedCatalog:
    """Vectors for the readable items (in input order). Vectors `known` already (an update's previous
    index: digests -> entries) and cached ones are reused; the rest are embedded by `engine` and cached.

    With `query_side` and an embedder whose queries embed differently (`query_config`), the query-side vectors
    too (`EmbeddedCatalog.query_vectors`), from their own cache: a photo cached without one is embedded again.
    A `known` photo is not: where the cache lacks its query-side vector (the previous index was tuned, or its
    cache was cleared) its catalog vector stands in for that row, as every row did before issue 38, and the
    build logs how many."""
    from model_zoo.weights import fingerprint  # the embedder has loaded torch already

    cache = EmbeddingCache("product_embeddings", fingerprint(embedder.config), embedder.dim)
    query_config = getattr(embedder, "query_config", None) if query_side else None
    query_cache = EmbeddingCache("product_embeddings", fingerprint(query_config), embedder.dim) if (
        query_config is not None and query_config != embedder.config) else None
    digests, skipped = content_digests(items)
    known_entries = known(digests.values()) if known else {}
    cached = cache.get_many(d for d in digests.values() if d not in known_entries)
    entries = {**cached, **known_entries}
    queries = {d: vector for d, (vector, _) in query_cache.get_many(digests.values()).items()} if query_cache else {}
    todo: dict[str, Path] = {}  # one photo per new digest: a duplicate is embedded once
    for item in items:
        digest = digests.get(item.path)
        if digest is not None and (digest not in entries or (
                query_cache is not None and digest not in known_entries and digest not in queries)):
            todo.setdefault(digest, item.path)
    bar = tqdm(total=len(items), desc="embedding", unit="img", disable=not show_bar)
    done = len(items) - len(todo)
    bar.update(done)
    for count, fresh, fresh_queries, failed in engine(list(todo.items()), embedder, batch_size or embedder.batch_size):
        cache.put_many(fresh)
        entries.update(fresh)
        if query_cache is not None:
            query_cache.put_many({d: (vector, fresh[d][1]) for d, vector in fresh_queries.items()})
            queries.update(fresh_queries)
        skipped.extend(failed)
        done += count
        bar.update(count)
        if progress is not None:
            progress(done, len(items), "embedding photo")
    bar.close()
    kept = [item for item in items if digests.get(item.path) in entries]
    kept_digests = [digests[item.path] for item in kept]
    records = [entries[digest][1] for digest in kept_digests]
    vectors = np.stack([entries[digest][0] for digest in kept_digests]).astype(np.float32) if kept else np.zeros(
        (0, embedder.dim), np.float32)
    return EmbeddedCatalog(
        items=kept,
        vectors=vectors,
        digests=kept_digests,
        sizes=[(record["width"], record["height"]) for record in records],
        skipped=skipped,
        cache_hits=sum(1 for digest in kept_digests if digest not in todo),
        query_vectors=None if query_cache is None else _query_rows(kept_digests, vectors, queries),
    )


def _query_rows(digests: list[str], vectors: np.ndarray, queries: dict[str, np.ndarray]) -> np.ndarray:
    """The query-side vector of each row; the catalog's own where there is none (logged: the fits read those
    rows as before issue 38)."""
    missing = sum(1 for digest in digests if digest not in queries)
    if missing:
        log.info("%d of %d photos have no query-side vector (kept from the previous index): their catalog vector "
                 "stands in for them in the similarity and in-catalog fits", missing, len(digests))
    return np.stack([queries.get(digest, vector) for digest, vector in zip(digests, vectors, strict=True)]).astype(
        np.float32) if digests else vectors


def embed_again(
    embedded: EmbeddedCatalog,
    embedder: ProductEmbedder,
    show_bar: bool = True,
    known: Callable[[Iterable[str]], dict[str, Entry]] | None = None,
    engine: Engine = local_engine,
) -> np.ndarray:
    """Another embedder's vectors of photos already embedded once, row for row (a category head's second
    view); a photo this embedder cannot read is an error, since the rows would no longer line up."""
    again = embed_catalog(embedded.items, embedder, show_bar=show_bar, known=known, engine=engine, query_side=False)
    if len(again.items) != len(embedded.items):
        unread = "; ".join(f"{entry['path']} ({entry['reason']})" for entry in again.skipped[:5])
        more = f" and {len(again.skipped) - 5} more" if len(again.skipped) > 5 else ""
        raise ValueError(f"{embedder.name} could not read {unread}{more}, which the first embedder read")
    return again.vectors
