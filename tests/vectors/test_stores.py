"""The vector-store contract, run for real against both stores: Annoy files and Milvus Lite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.ann import clustered_unit_vectors
from lookalike.vectors.neighbours import nearest
from lookalike.vectors.stores import StoreError, StoreSpec, create_store, open_store, parse_store
from lookalike.vectors.stores.annoy_store import AnnoyStore

DIM = 32
COUNT = 600
CATEGORIES = ("shoes", "bags", "men's \"tall\" hats")  # quotes must survive a Milvus filter


def _data() -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    vectors = clustered_unit_vectors(COUNT + 20, DIM, seed=3, clusters=30, latent=8)
    ids = np.arange(1000, 1000 + COUNT)  # ids need not be row numbers
    categories = [CATEGORIES[i % 3] for i in range(COUNT)]
    return ids, vectors[:COUNT], categories, vectors[COUNT:]


def _new_store(kind: str, tmp_path: Path):
    spec = parse_store("annoy" if kind == "annoy" else f"milvus://{tmp_path / 'lite.db'}")
    return create_store(spec, tmp_path / "index", DIM, trees=8, name="contract")


@pytest.mark.parametrize("kind", ["annoy", "milvus"])
def test_store_contract(kind: str, tmp_path: Path) -> None:
    ids, vectors, categories, queries = _data()
    store = _new_store(kind, tmp_path)
    store.add(ids, vectors, categories)
    with pytest.raises(StoreError, match="already holds"):
        store.add(ids[:1], vectors[:1], categories[:1])
    entry = store.persist()
    assert store.count() == COUNT

    _, exact = nearest(vectors, queries, 10)
    found = [store.search(q, 10) for q in queries]
    recall = np.mean([len(set(f.ids) & set(ids[e])) / 10 for f, e in zip(found, exact, strict=True)])
    assert recall >= 0.95
    first = found[0]
    np.testing.assert_allclose(first.cosines, vectors[first.ids - 1000] @ queries[0], atol=1e-5)  # exact scores
    assert list(first.cosines) == sorted(first.cosines, reverse=True)
    assert first.categories == [categories[i - 1000] for i in first.ids]

    hats = CATEGORIES[2]
    bags = store.search(queries[1], 15, category=hats)
    assert len(bags) == 15 and set(bags.categories) == {hats}
    assert len(store.search(queries[1], 5, category="no such category")) == 0
    inside = np.flatnonzero(np.asarray(categories) == hats)
    _, top = nearest(vectors[inside], queries[1], 15)
    assert len(set(bags.ids) & set(ids[inside][top[0]])) >= 14

    got_ids, got = store.vectors(ids[[5, 2, 400]])
    assert list(got_ids) == list(ids[[5, 2, 400]])
    np.testing.assert_allclose(got, vectors[[5, 2, 400]], atol=1e-6)
    all_ids, everything = store.vectors()
    assert list(all_ids) == list(ids) and np.allclose(everything, vectors, atol=1e-6)

    # delete and upsert, then persist and reopen as search would
    nearest_id = int(first.ids[0])
    store.delete([nearest_id, 999_999])
    moved = -vectors[0]  # item 1000 now points the other way
    store.upsert([1000], moved[None, :], [hats])
    entry = store.persist()
    store.close()
    reopened = open_store(tmp_path / "index", entry)
    assert reopened.count() == COUNT - 1
    assert nearest_id not in reopened.search(queries[0], 10).ids
    top = reopened.search(moved, 1)
    assert top.ids[0] == 1000 and top.categories == [hats] and top.cosines[0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(StoreError, match="no item"):
        reopened.vectors([nearest_id])
    reopened.close()


def test_annoy_float16_vectors_keep_the_ranking(tmp_path: Path) -> None:
    ids, vectors, categories, queries = _data()
    results = {}
    for dtype in ("float32", "float16"):
        store = AnnoyStore(tmp_path / dtype, DIM, trees=8, dtype=dtype)
        store.add(ids, vectors, categories)
        store.persist()
        results[dtype] = [list(store.search(q, 30).ids) for q in queries]
        store.close()
    sizes = {dtype: (tmp_path / dtype / "vectors.npy").stat().st_size for dtype in ("float32", "float16")}
    assert sizes["float16"] < 0.6 * sizes["float32"]
    overlap = np.mean([len(set(a) & set(b)) / 30 for a, b in zip(results["float32"], results["float16"], strict=True)])
    assert overlap >= 0.95


def test_store_addresses_parse_or_say_what_is_wrong(tmp_path: Path) -> None:
    assert parse_store("annoy") == StoreSpec("annoy", None, {})
    assert parse_store("annoy?dtype=float16").options == {"dtype": "float16"}
    assert parse_store("milvus") == StoreSpec("milvus", None, {})
    assert parse_store(f"milvus://{tmp_path}/v.db").uri == str(tmp_path / "v.db")
    server = parse_store("milvus://db.example.com:19530?index=HNSW")
    assert server.uri == "http://db.example.com:19530" and server.options == {"index": "HNSW"}
    for address, message in [("faiss", "unknown store"), ("annoy?index=HNSW", "not one of"),
                             ("milvus://", "names neither")]:
        with pytest.raises(StoreError, match=message):
            parse_store(address)
    with pytest.raises(StoreError, match="float32, float16"):
        create_store(parse_store("annoy?dtype=int8"), tmp_path, DIM, 4, "x")


def test_a_zero_tree_annoy_store_is_searched_exactly_and_writes_no_forest(tmp_path: Path) -> None:
    ids, vectors, categories, queries = _data()
    store = AnnoyStore(tmp_path / "exact", DIM, trees=0)
    store.add(ids, vectors, categories)
    entry = store.persist()
    assert not list((tmp_path / "exact").glob("*.ann")) and "search_k_per_candidate" not in entry
    reopened = AnnoyStore.open(tmp_path / "exact", entry)
    _, truth = nearest(vectors, queries, 10)
    for query, expected in zip(queries, truth, strict=True):
        assert list(reopened.search(query, 10).ids) == list(ids[expected])
    hats = reopened.search(queries[0], 5, category=CATEGORIES[2])
    assert hats.categories == [CATEGORIES[2]] * 5
    reopened.delete(ids[:1])
    with pytest.raises(StoreError, match="persist"):
        reopened.search(queries[0], 5)
    reopened.close()
