"""Milvus as the vector store, through one client for all its forms (pymilvus' `MilvusClient`):

- Milvus Lite, an embedded file (`milvus` puts it inside the index folder; `milvus:///path/file.db`
  anywhere else): for tests and single machines. One process at a time may open a Lite file.
- a Milvus server or cluster (`milvus://host:19530`; the token, if any, from MILVUS_TOKEN, never
  written to the manifest): vectors stay on the cluster, the app holds none of them.

Each build writes a new collection (`<prefix>_<random>`), so the collection the app reads is never
touched; the previous one is dropped once the new index is in place (`discard`). Vectors are unit
length and compared by inner product, so Milvus' scores are the cosines search reports. The category
is a scalar field: scope "category" is a filtered search. The vector index is chosen by measurement
(bench/scale.py, docs/experiments/vector-stores.md): on Milvus Lite at 100k vectors IVF_FLAT and HNSW answered
at about the same p50 over two runs, both ahead of FLAT, and IVF_FLAT had the best p95 and a much shorter build
than HNSW, so Lite gets IVF_FLAT; a server gets HNSW, the usual choice there (no server could be measured here).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Sequence

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from lookalike.vectors.stores.base import EXPORT_CHUNK, Found, StoreError, VectorStore, check_batch

INDEXES = ("FLAT", "IVF_FLAT", "HNSW")
LITE_INDEX, SERVER_INDEX = "IVF_FLAT", "HNSW"
NPROBE_SHARE = 8  # IVF lists probed: an eighth, at least 32 (no recall@30 lost at 100k and 1M, docs/benchmarks.md)


def index_params(index: str, count: int) -> tuple[dict, dict]:
    """(build, search) parameters for `count` vectors: IVF's list count grows as 4 sqrt(n), up to 1024."""
    if index == "IVF_FLAT":
        nlist = int(min(1024, max(1, 4 * count**0.5)))
        return {"nlist": nlist}, {"nprobe": min(nlist, max(32, nlist // NPROBE_SHARE))}
    if index == "HNSW":
        return {"M": 16, "efConstruction": 200}, {"ef": 128}
    return {}, {}


CATEGORY_LENGTH = 512
TOKEN_VARIABLE = "MILVUS_TOKEN"


def is_lite(uri: str) -> bool:
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


_lite_users: Counter[str] = Counter()  # open clients per Lite file in this process
_lite_lock = threading.Lock()


def connect(uri: str) -> MilvusClient:
    try:
        if not is_lite(uri):
            return MilvusClient(uri=uri, token=os.environ.get(TOKEN_VARIABLE, ""))
        with _lite_lock:
            client = MilvusClient(uri)
            _lite_users[uri] += 1
            return client
    except MilvusException as exc:
        raise StoreError(f"cannot reach Milvus at {uri}: {exc.message}") from None


def disconnect(client: MilvusClient, uri: str) -> None:
    """Close a client; the last one on a Lite file also stops its in-process server, which holds the
    file's lock (a build renames its folder, and a later open must get the lock)."""
    client.close()
    if is_lite(uri):
        from milvus_lite.server_manager import server_manager_instance

        with _lite_lock:
            _lite_users[uri] -= 1
            if _lite_users[uri] <= 0:
                del _lite_users[uri]
                server_manager_instance.release_server(uri)


class MilvusStore(VectorStore):
    kind = "milvus"

    def __init__(self, client: MilvusClient, uri: str, collection: str, dim: int, index: str, external: bool) -> None:
        """`external`: the vectors live outside the index folder (a server, or a Lite file elsewhere)."""
        if index not in INDEXES:
            raise StoreError(f"Milvus index must be one of {', '.join(INDEXES)}, not {index!r}")
        self.client: MilvusClient | None = client
        self.uri, self.collection, self.dim, self.index, self.external = uri, collection, dim, index, external
        self.search_params: dict = {}

    @classmethod
    def create(cls, uri: str, dim: int, index: str | None, prefix: str, external: bool) -> MilvusStore:
        """A new, empty collection at `uri` (Lite file path or server URL)."""
        client = connect(uri)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("category", DataType.VARCHAR, max_length=CATEGORY_LENGTH)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        collection = f"{prefix}_{uuid.uuid4().hex[:12]}"
        client.create_collection(collection, schema=schema)
        return cls(client, uri, collection, dim, index or (LITE_INDEX if is_lite(uri) else SERVER_INDEX), external)

    @classmethod
    def open(cls, uri: str, entry: dict) -> MilvusStore:
        """The collection a build persisted (its manifest `entry`), loaded for search."""
        client = connect(uri)
        if not client.has_collection(entry["collection"]):
            disconnect(client, uri)
            raise StoreError(f"Milvus at {uri} has no collection {entry['collection']} (dropped, or another server?)")
        store = cls(client, uri, entry["collection"], entry["dim"], entry["index"], external=bool(entry.get("uri")))
        store.search_params = entry["search_params"]
        client.load_collection(store.collection)
        if (held := store.count()) != entry["items"]:
            store.close()
            raise StoreError(f"Milvus collection {store.collection} holds {held} of {entry['items']} items")
        return store

    def add(self, ids: Sequence[int], vectors: np.ndarray, categories: Sequence[str]) -> None:
        vectors = check_batch(ids, vectors, categories, self.dim)
        if len(ids) and self.client.get(self.collection, ids=[int(i) for i in ids], output_fields=["id"]):
            raise StoreError("add was given ids the store already holds; use upsert")
        for start in range(0, len(ids), EXPORT_CHUNK):
            stop = start + EXPORT_CHUNK
            rows = [{"id": int(i), "category": c, "vector": v}
                    for i, c, v in zip(ids[start:stop], categories[start:stop], vectors[start:stop], strict=True)]
            self.client.insert(self.collection, rows)

    def upsert(self, ids: Sequence[int], vectors: np.ndarray, categories: Sequence[str]) -> None:
        vectors = check_batch(ids, vectors, categories, self.dim)
        rows = [{"id": int(i), "category": c, "vector": v} for i, c, v in zip(ids, categories, vectors, strict=True)]
        for start in range(0, len(rows), EXPORT_CHUNK):
            self.client.upsert(self.collection, rows[start : start + EXPORT_CHUNK])

    def delete(self, ids: Sequence[int]) -> None:
        if len(ids):
            self.client.delete(self.collection, ids=[int(i) for i in ids])

    def search(self, vector: np.ndarray, k: int, category: str | None = None) -> Found:
        hits = self.client.search(
            self.collection,
            data=[np.asarray(vector, np.float32)],
            limit=k,
            filter="" if category is None else f"category == {json.dumps(category, ensure_ascii=False)}",
            output_fields=["category"],
            search_params={"metric_type": "IP", "params": self.search_params},
        )[0]
        return Found(
            np.asarray([hit["id"] for hit in hits], np.int64),
            np.asarray([hit["distance"] for hit in hits], np.float32),
            [hit["entity"]["category"] for hit in hits],
        )

    def count(self) -> int:
        return int(self.client.query(self.collection, filter="", output_fields=["count(*)"])[0]["count(*)"])

    def vectors(self, ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        found: dict[int, list[float]] = {}
        if ids is None:
            iterator = self.client.query_iterator(self.collection, batch_size=EXPORT_CHUNK, filter="",
                                                  output_fields=["vector"])
            while batch := iterator.next():
                found.update((row["id"], row["vector"]) for row in batch)
            iterator.close()
        else:
            wanted = [int(i) for i in ids]
            for start in range(0, len(wanted), EXPORT_CHUNK):
                rows = self.client.get(self.collection, ids=wanted[start : start + EXPORT_CHUNK],
                                       output_fields=["vector"])
                found.update((row["id"], row["vector"]) for row in rows)
            if missing := [i for i in wanted if i not in found]:
                raise StoreError(f"Milvus collection {self.collection} holds no item {missing[0]}")
        order = sorted(found) if ids is None else [int(i) for i in ids]
        matrix = np.asarray([found[i] for i in order], np.float32).reshape(len(order), self.dim)
        return np.asarray(order, np.int64), matrix

    def persist(self) -> dict:
        self.client.flush(self.collection)
        count = self.count()
        build, self.search_params = index_params(self.index, count)
        if self.client.list_indexes(self.collection):  # persisted before: rebuilt for the current count
            self.client.release_collection(self.collection)
            self.client.drop_index(self.collection, "vector")
        params = self.client.prepare_index_params()
        params.add_index(field_name="vector", index_type=self.index, metric_type="IP", params=build)
        self.client.create_index(self.collection, params)
        self.client.load_collection(self.collection)
        return {"kind": self.kind, "uri": self.uri if self.external else None, "collection": self.collection,
                "dim": self.dim, "items": count, "index": self.index, "index_params": build,
                "search_params": self.search_params}

    def close(self) -> None:
        if self.client is not None:
            disconnect(self.client, self.uri)
            self.client = None

    def discard(self) -> None:
        if not self.external:
            return  # a Lite file in the index folder goes with the folder
        client = connect(self.uri)  # this store's own client may be closed already
        try:
            if client.has_collection(self.collection):
                client.drop_collection(self.collection)
        finally:
            disconnect(client, self.uri)
