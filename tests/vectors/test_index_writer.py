"""`IndexWriter`, the one way an index folder is written: its lock, a failed write leaving the index in use
byte for byte, the new store dropped on failure, the replaced one after a swap. A toy index (one part file
and Annoy vectors) stands in for the product index and the face gallery; no model is loaded."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lookalike.vectors import index_folder, index_writer
from lookalike.vectors.index_writer import IndexWriter
from lookalike.vectors.manifest import MANIFEST, Manifest
from lookalike.vectors.stores import VectorStore, parse_store

DIM = 8
PART = "part.txt"


@dataclass(kw_only=True)
class ToyManifest(Manifest):
    FORMAT_NAME = "toy-index"
    FORMAT_VERSION = 1
    READABLE_VERSIONS = (1,)

    items: int
    store: dict


def _fill(items: int, fail: bool = False):
    """A `fill` writing `items` vectors and a part file; `fail`: raise once the part is half written."""

    def fill(folder: Path, store: VectorStore) -> ToyManifest:
        vectors = np.random.default_rng(items).normal(size=(items, DIM)).astype(np.float32)
        store.add(list(range(items)), vectors / np.linalg.norm(vectors, axis=1)[:, None], ["all"] * items)
        entry = store.persist()
        (folder / PART).write_text("half")
        if fail:
            raise RuntimeError("killed while writing")
        (folder / PART).write_text(f"{items} items")
        return ToyManifest(items=items, store={**entry, "address": "annoy"})

    return fill


def _write(out: Path, items: int, fail: bool = False) -> ToyManifest:
    with IndexWriter(out, what="toy") as writer:
        return writer.write(parse_store("annoy"), DIM, 2, _fill(items, fail))


def _raises(exc: Exception):
    def fail(*args: object) -> None:
        raise exc

    return fail


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_write_swaps_in_a_finished_index(tmp_path: Path) -> None:
    out = tmp_path / "index"
    manifest = _write(out, 3)
    assert ToyManifest.read(out) == manifest and manifest.items == 3
    assert (out / PART).read_text() == "3 items" and index_folder.generation(out) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no building folder, no lock file left
    _write(out, 5)
    assert ToyManifest.read(out).items == 5 and (out / PART).read_text() == "5 items"


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    out = tmp_path / "index"
    second = ("import sys; from lookalike.vectors.index_writer import IndexWriter\n"
              "from lookalike.vectors.index_folder import IndexLockedError\n"
              "try:\n    IndexWriter(sys.argv[1]).__enter__()\n"
              "except IndexLockedError as exc:\n    print(exc); sys.exit(3)\n")
    with IndexWriter(out):
        held = subprocess.run([sys.executable, "-c", second, str(out)], capture_output=True, text=True, timeout=60)
        assert held.returncode == 3, held.stderr
        assert "is being built or updated by process" in held.stdout
    free = subprocess.run([sys.executable, "-c", second, str(out)], capture_output=True, text=True, timeout=60)
    assert free.returncode == 0, free.stdout + free.stderr


@pytest.mark.parametrize("where", ["fill", "manifest", "swap"])
def test_a_failed_write_leaves_the_index_byte_for_byte_and_drops_the_new_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    out = tmp_path / "index"
    _write(out, 3)
    before = _snapshot(out)
    made: list[VectorStore] = []
    calls: list[str] = []
    create = index_writer.create_store

    def recording_store(*args: object) -> VectorStore:
        store = create(*args)
        close = store.close
        store.close = lambda: (calls.append("close"), close())[-1]
        store.discard = lambda: calls.append("discard")
        made.append(store)
        return store

    monkeypatch.setattr(index_writer, "create_store", recording_store)
    replaced: list[object] = []
    monkeypatch.setattr(index_writer, "discard_replaced", lambda *args: replaced.append(args))
    if where == "manifest":
        monkeypatch.setattr(ToyManifest, "write", _raises(OSError("disk full")))
    if where == "swap":
        monkeypatch.setattr(index_folder, "swap_in", _raises(OSError("input/output error")))
    with pytest.raises((RuntimeError, OSError)):
        _write(out, 7, fail=where == "fill")
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    assert len(made) == 1 and calls[-2:] == ["close", "discard"]  # closed, then its outside vectors dropped
    assert replaced == []  # the index in use keeps its vectors


def test_after_a_swap_the_replaced_index_store_is_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "index"
    dropped: list[tuple] = []
    monkeypatch.setattr(index_writer, "discard_replaced", lambda *args: dropped.append(args))
    first = _write(out, 3)
    assert dropped == [(out, None, "toy")]  # nothing was there to replace
    second = _write(out, 4)
    assert dropped[-1] == (out, first.store, "toy") and first.store != second.store
    with IndexWriter(out, what="toy") as writer:
        assert writer.replaced_store == second.store
        writer.replaced_store = {"kind": "milvus", "uri": "http://elsewhere:19530"}  # the caller knows better
        writer.write(parse_store("annoy"), DIM, 2, _fill(2))
    assert dropped[-1] == (out, {"kind": "milvus", "uri": "http://elsewhere:19530"}, "toy")


def test_an_unreadable_index_there_has_no_store_to_drop(tmp_path: Path) -> None:
    out = tmp_path / "index"
    out.mkdir()
    (out / MANIFEST).write_text("{half")
    with IndexWriter(out) as writer:
        assert writer.replaced_store is None
        writer.write(parse_store("annoy"), DIM, 2, _fill(2))
    assert ToyManifest.read(out).items == 2


def test_write_runs_once_inside_the_block(tmp_path: Path) -> None:
    writer = IndexWriter(tmp_path / "index")
    with pytest.raises(RuntimeError, match="inside"):
        writer.write(parse_store("annoy"), DIM, 2, _fill(2))
    with writer:
        writer.write(parse_store("annoy"), DIM, 2, _fill(2))
        with pytest.raises(RuntimeError, match="once"):
            writer.write(parse_store("annoy"), DIM, 2, _fill(3))
    assert ToyManifest.read(tmp_path / "index").items == 2
