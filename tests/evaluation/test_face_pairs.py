"""Pairs parsers (LFW pairs.txt, CSV, generated from folders) and the subset used by --limit."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from lookalike.evaluation.face_pairs import (
    Pair,
    PairsFormatError,
    generate_pairs,
    limit_pairs,
    load_pairs,
    read_csv_pairs,
    read_lfw_pairs,
)

LFW_TEXT = "2\t1\nAnn\t1\t2\nBob\t1\tCid\t3\nDan\t2\t4\nEve\t1\tFay\t12\n"


def test_lfw_format(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(LFW_TEXT)
    assert read_lfw_pairs(path) == [
        Pair(1, True, "Ann/Ann_0001.jpg", "Ann/Ann_0002.jpg"),
        Pair(1, False, "Bob/Bob_0001.jpg", "Cid/Cid_0003.jpg"),
        Pair(2, True, "Dan/Dan_0002.jpg", "Dan/Dan_0004.jpg"),
        Pair(2, False, "Eve/Eve_0001.jpg", "Fay/Fay_0012.jpg"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x y\nAnn 1 2\n", "first line"),
        ("1\t2\nAnn 1 2\n", "promises"),
        ("1\t1\nAnn 1\nBob 1 Cid 2\n", ":2:"),
    ],
)
def test_lfw_format_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(PairsFormatError, match=message):
        read_lfw_pairs(path)


def test_csv_format(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("fold,same,image1,image2\n1,1,a/1.jpg,a/2.jpg\n2,false,a/1.jpg,b/1.jpg\n")
    assert read_csv_pairs(path) == [Pair(1, True, "a/1.jpg", "a/2.jpg"), Pair(2, False, "a/1.jpg", "b/1.jpg")]
    path.write_text("fold,same,image1\n1,1,a\n")
    with pytest.raises(PairsFormatError, match="image2"):
        read_csv_pairs(path)
    path.write_text("fold,same,image1,image2\n1,maybe,a,b\n")
    with pytest.raises(PairsFormatError, match=":2:"):
        read_csv_pairs(path)


def test_real_pairs_files_agree(data_root: Path) -> None:
    faces = data_root / "faces"
    from_txt = load_pairs(faces)  # FACES_DIR/pairs.txt by default
    assert len(from_txt) == 3000 and sum(p.same for p in from_txt) == 1500
    assert Counter(p.fold for p in from_txt) == {f: 600 for f in range(1, 6)}
    assert load_pairs(faces, faces / "pairs.csv") == from_txt
    assert all((faces / p.image1).is_file() and (faces / p.image2).is_file() for p in from_txt[:50])


def test_generated_pairs_are_deterministic_and_balanced(tmp_path: Path) -> None:
    for person in ("ann", "bob", "cid"):
        (tmp_path / person).mkdir()
        for i in range(3):
            (tmp_path / person / f"{i}.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a face")
    pairs = load_pairs(tmp_path)  # no pairs.txt: generated
    assert pairs == generate_pairs(tmp_path)
    assert len(pairs) == 18 and sum(p.same for p in pairs) == 9  # all 9 matched combinations
    for pair in pairs:
        same_folder = pair.image1.split("/")[0] == pair.image2.split("/")[0]
        assert same_folder == pair.same
    with pytest.raises(ValueError, match="at least two images"):
        generate_pairs(tmp_path / "ann")


def test_limit_keeps_classes_and_folds(data_root: Path) -> None:
    subset = limit_pairs(load_pairs(data_root / "faces"), 20)
    assert len(subset) == 20 and sum(p.same for p in subset) == 10
    assert len({p.fold for p in subset}) == 5
