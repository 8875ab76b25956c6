"""Where an index keeps its vectors, chosen by one address (`--store`) and recorded in its manifest.

    annoy                      the default: Annoy forests in the index folder (annoy?dtype=float16 halves
                               the memory-mapped vectors)
    milvus                     Milvus Lite, a file inside the index folder
    milvus:///abs/path.db      Milvus Lite, a file elsewhere (one process at a time)
    milvus://host:19530        a Milvus server or cluster (token from MILVUS_TOKEN); https://... also works
    ...?index=HNSW             the Milvus vector index (FLAT, IVF_FLAT, HNSW; default by measurement)

`ProductSearcher.load` reopens whatever the manifest names, so the app needs no flag of its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from lookalike.vectors.stores.base import Found, StoreError, VectorStore

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pymilvus loads only for an index that uses it
    from lookalike.vectors.stores.milvus_store import MilvusStore

__all__ = ["DEFAULT_STORE", "Found", "StoreError", "StoreSpec", "VectorStore", "create_store", "open_store",
           "parse_store"]

DEFAULT_STORE = "annoy"
KINDS = ("annoy", "milvus")
LITE_IN_INDEX = Path("milvus") / "vectors.db"


@dataclass(frozen=True)
class StoreSpec:
    kind: str
    uri: str | None = None  # Milvus: a server URL or a Lite file; None: a Lite file inside the index folder
    options: dict[str, str] = field(default_factory=dict)


def parse_store(address: str) -> StoreSpec:
    """A `--store` address as a spec; a malformed one is a `StoreError` naming what is wrong."""
    parts = urlsplit(address)
    kind = parts.scheme or parts.path
    if kind not in KINDS:
        raise StoreError(f"unknown store {address!r}: use annoy, milvus, milvus:///path/file.db or milvus://host:port")
    options = dict(parse_qsl(parts.query))
    allowed = {"annoy": {"dtype"}, "milvus": {"index"}}[kind]
    if unknown := set(options) - allowed:
        raise StoreError(f"store option {sorted(unknown)[0]!r} is not one of {sorted(allowed)} for {kind}")
    if kind == "annoy" or not parts.scheme:
        return StoreSpec(kind, None, options)
    if parts.netloc:
        return StoreSpec(kind, f"http://{parts.netloc}", options)
    if not parts.path.endswith(".db"):
        raise StoreError(f"store {address!r} names neither a Milvus server (milvus://host:port) nor a .db file")
    return StoreSpec(kind, str(Path(parts.path).resolve()), options)


def _lite_path(folder: Path) -> str:
    path = folder / LITE_IN_INDEX
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def _milvus() -> type[MilvusStore]:
    try:
        from lookalike.vectors.stores.milvus_store import MilvusStore
    except ImportError as exc:
        needs = "a milvus store needs pymilvus and milvus-lite"
        raise StoreError(f"{needs} ({exc}): pip install 'lookalike[scale]'") from None
    return MilvusStore


def create_store(spec: StoreSpec, folder: Path, dim: int, trees: int, name: str) -> VectorStore:
    """An empty store for a build writing into index folder `folder` (`name`: the index's, for collections)."""
    if spec.kind == "annoy":
        from lookalike.vectors.stores.annoy_store import FOLDER, AnnoyStore

        return AnnoyStore(folder / FOLDER, dim, trees, spec.options.get("dtype", "float32"))
    prefix = "lookalike_" + "".join(c if c.isalnum() else "_" for c in name)[:40]
    return _milvus().create(spec.uri or _lite_path(folder), dim, spec.options.get("index"), prefix,
                            external=spec.uri is not None)


def open_store(folder: Path, entry: dict) -> VectorStore:
    """The store an index's manifest entry describes, opened for search."""
    if entry.get("kind") == "annoy":
        from lookalike.vectors.stores.annoy_store import FOLDER, AnnoyStore

        return AnnoyStore.open(folder / FOLDER, entry)
    if entry.get("kind") == "milvus":
        return _milvus().open(entry.get("uri") or str(folder / LITE_IN_INDEX), entry)
    raise StoreError(f"the manifest names an unknown vector store {entry.get('kind')!r}")


def discard_replaced(folder: Path, entry: dict | None, what: str = "index") -> None:
    """Drop a replaced index's vectors where they live outside its folder (a Milvus collection); the folder's
    own files go with the folder. A failure only warns: the new index is already in place."""
    if not entry or not entry.get("uri"):
        return
    try:
        store = open_store(folder, entry)
        store.discard()
        store.close()
    except (StoreError, OSError) as exc:
        log.warning("could not drop the replaced %s's %s vectors (%s); drop them by hand", what, entry["kind"], exc)
