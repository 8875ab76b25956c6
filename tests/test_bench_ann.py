"""The benchmark's ANN and seed-search parts on tiny synthetic data: right answers, a full table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.ann import clustered_unit_vectors
from bench.run import ann_section, catalog_queries, render
from bench.seed_bruteforce import seed_search, write_seed_db
from lookalike.vectors.neighbours import mean_recall, nearest


def test_exact_top_k_matches_a_full_sort() -> None:
    base = clustered_unit_vectors(500, 16, seed=0, clusters=10)
    query = clustered_unit_vectors(1, 16, seed=1, clusters=10)[0]
    assert nearest(base, query, 30)[1][0].tolist() == np.argsort(-(base @ query), kind="stable")[:30].tolist()
    np.testing.assert_allclose(np.linalg.norm(base, axis=1), 1.0, rtol=1e-5)


def test_recall_counts_shared_neighbours() -> None:
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    assert mean_recall([[3, 2, 1], [4, 9, 8]], truth) == 0.5 * (1.0 + 1 / 3)


def test_seed_search_reads_sqlite_and_ranks_by_euclidean_distance(tmp_path: Path) -> None:
    base = clustered_unit_vectors(300, 8, seed=2, clusters=5)
    db = write_seed_db(base, tmp_path / "seed.sqlite")
    query = base[17]
    expected = np.argsort(np.linalg.norm(base - query, axis=1), kind="stable")[:30].tolist()
    assert seed_search(db, query, 30) == expected
    assert seed_search(db, query, 30) == nearest(base, query, 30)[1][0].tolist()  # unit vectors: same order


def test_ann_section_produces_the_report_table() -> None:
    vectors = clustered_unit_vectors(3000, 16, seed=3, clusters=20)
    base, queries = catalog_queries(vectors, 20)
    assert len(base) + len(queries) <= len(vectors) and len(queries) == 20
    rows = ann_section("tiny", base, queries, trees=[2, 8], search_ks=[-1, 2000])
    methods = [row["method"] for row in rows]
    assert methods[:2] == ["exact BLAS", "annoy + re-rank (index default)"]
    assert methods.count("annoy") == 4
    assert rows[0]["recall@30"] == 1.0
    assert all(0.0 <= row["recall@30"] <= 1.0 and row["p50_ms"] > 0 for row in rows)
    best = max(r["recall@30"] for r in rows if r["method"] == "annoy")
    assert best > 0.8  # 8 trees and a large search_k on 3k clustered vectors
    report = render([("ANN on tiny", "note", rows)], quick=True, wall=1.0, load=(0.5, 0.7))
    assert "## ANN on tiny" in report and "| dataset | method | setting |" in report
    assert report.count("| tiny |") == len(rows)
