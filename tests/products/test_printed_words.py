"""Printed words as category evidence: the word rule, the catalog's word table and its vote, OCR on a
rendered pack, and the wiring (read at build time, kept by an update, read for a query only when the index
has words). Accuracy is measured on the GroceryStore protocol (docs/experiments/printed-words.md), not here."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from lookalike.products import printed_words
from lookalike.products.build import build_index
from lookalike.products.index import IndexCorruptError
from lookalike.products.printed_words import WordTable, category_vote, read_words, words
from lookalike.products.search import ProductSearcher

FAST = {"fast": True, "size": 160, "flip": False, "show_bar": False, "trees": 4}
PACKS = {"oat-milk": "HAVREDRYCK", "oatghurt": "HAVREGURT"}


def pack(word: str, seed: int) -> Image.Image:
    """A carton of one look (colours, layout) with its product's word printed across it, shifted a little
    per shot: the two categories differ only by the word, as a brand's oat drink and oatghurt nearly do."""
    rng = random.Random(seed)
    image = Image.new("RGB", (420, 300), (200 + rng.randrange(20), 215, 235))
    draw = ImageDraw.Draw(image)
    x, y = 30 + rng.randrange(30), 90 + rng.randrange(40)
    draw.rectangle((x - 15, y - 60, x + 340, y + 120), fill=(250, 250, 250))
    draw.text((x, y), word, fill=(20, 20, 110), font=ImageFont.load_default(size=44))
    draw.ellipse((x + 120, y - 50, x + 170, y), fill=(30, 30, 30))
    return image


def test_words_are_letter_runs_of_confident_lines_with_each_line_joined() -> None:
    lines = [("Gräddfil 12%", 0.9), ("HAVRE DRYCK", 0.95), ("abc", 0.99), ("BLURRED", 0.5), ("FÖRP. DAG", 0.8)]
    assert words(lines) == {"GRADDFIL", "HAVRE", "DRYCK", "HAVREDRYCK", "FORP", "FORPDAG"}
    assert words([]) == frozenset()


def test_the_word_table_votes_by_each_categorys_share_of_photos() -> None:
    items, categories = {}, {}
    for i in range(6):  # every oat drink carton says OATLY and HAVREDRYCK
        items[i], categories[i] = frozenset({"OATLY", "HAVREDRYCK"}), "oat-milk"
    for i in range(6, 18):  # half the oatghurt photos show the brand
        items[i], categories[i] = frozenset({"HAVREGURT"} | ({"OATLY"} if i < 12 else set())), "oatghurt"
    for i in range(18, 18 + printed_words.MIN_PHOTOS - 1):  # too few photos carry JUICE for it to vote
        items[i], categories[i] = frozenset({"JUICE"}), "juice"
    table, classes = WordTable(items, categories), ["juice", "oat-milk", "oatghurt"]
    np.testing.assert_allclose(table.vote({"HAVREDRYCK"}, classes), [0, 1, 0])
    np.testing.assert_allclose(table.vote({"OATLY"}, classes), [0, 2 / 3, 1 / 3])  # 6 of 6 against 6 of 12
    np.testing.assert_allclose(table.vote({"OATLY", "HAVREGURT", "NEVER"}, classes), [0, 1 / 3, 2 / 3])
    assert table.vote({"JUICE"}, classes) is None and table.vote(set(), classes) is None
    probs = np.array([0.7, 0.2, 0.1])
    assert category_vote(probs, None) is probs  # no voting word: the ranking stands
    blended = category_vote(probs, table.vote({"HAVREDRYCK"}, classes))
    assert blended.argmax() == 1 and blended.sum() == pytest.approx(1.0)


def test_a_printed_word_is_read_and_a_blank_pack_has_none() -> None:
    assert "HAVREDRYCK" in read_words(pack("HAVREDRYCK", 0))
    assert read_words(Image.new("RGB", (300, 200), "white")) == frozenset()


# ---------------------------------------------------------------- wired into build and search
@pytest.fixture(scope="module")
def worded_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Six shots of each of two packs that differ only by their word, indexed with words; and the catalog."""
    catalog = tmp_path_factory.mktemp("words_catalog")
    for category, word in PACKS.items():
        (catalog / category).mkdir()
        for shot in range(6):
            pack(word, shot).save(catalog / category / f"{word.lower()}_{shot}.jpg", quality=92)
    out = tmp_path_factory.mktemp("words_index") / "index"
    build_index(catalog, out, read_text=True, **FAST)
    return out, catalog


def test_search_reads_the_query_and_its_words_vote(
    worded_index: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, _ = worded_index
    monkeypatch.setattr(printed_words, "READ_BELOW", 1.01)  # read whatever the other cues say
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["words"]["items"] == manifest["words"]["with_words"] == 12
    stored = printed_words.stored_words(index)
    assert sum("HAVREDRYCK" in found for found in stored.values()) >= printed_words.MIN_PHOTOS
    query = tmp_path / "another_shot.jpg"
    pack("HAVREDRYCK", 99).save(query)
    searcher = ProductSearcher.load(index)
    read = searcher.search(query, top_k=4)
    unread = searcher.search(query, top_k=4, read_text=False)
    vector, cues = searcher.embed_query(query)
    assert "HAVREDRYCK" in cues["words"] and "local_features" not in cues  # an index without local features
    classes = searcher.index.head.classes
    vote = dict(zip(classes, searcher.part("words").table.vote(cues["words"], classes), strict=True))
    assert vote["oat-milk"] > 0.9  # the catalog's oat drink photos carry the word, the oatghurt ones do not
    weight = printed_words.VOTE_WEIGHT
    for category, prob in read.categories:  # blended after the other votes, at its weight
        assert prob == pytest.approx((1 - weight) * dict(unread.categories)[category] + weight * vote[category])
    assert read.categories[0][0] == "oat-milk"
    assert "HAVREDRYCK" in read.words and read.summary()["words"] == read.words and unread.words is None
    assert searcher.categorize(vector, cues)[: len(read.categories)] == read.categories  # what search ranked


def test_a_query_is_read_only_when_the_other_cues_are_unsure(
    worded_index: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    index, _ = worded_index
    searcher, photo = ProductSearcher.load(index), pack("HAVREDRYCK", 7)
    vector, cues = searcher.embed_query(photo, read_text=False)
    first = searcher.categorize(vector, cues)[0][1]
    monkeypatch.setattr(printed_words, "READ_BELOW", first)  # sure enough: not read
    assert searcher.query_cues(photo, vector).get("words") is None
    monkeypatch.setattr(printed_words, "READ_BELOW", first + 1e-6)  # just unsure: read
    assert "HAVREDRYCK" in searcher.query_cues(photo, vector)["words"]


def test_an_update_reads_only_new_photos(worded_index: tuple[Path, Path], tmp_path: Path) -> None:
    index, catalog = worded_index
    copy, new = tmp_path / "index", catalog / "oatghurt" / "havregurt_new.jpg"
    shutil.copytree(index, copy)  # an update keeps unchanged photos' ids by path: same catalog, one photo more
    pack("HAVREGURT", 42).save(new, quality=92)
    try:
        report = build_index(catalog, copy, update=True, show_bar=False)
    finally:
        new.unlink()
    assert report["words"]["items"] == 13 and report["words"]["reused"] == 12 and report["words"]["cached"] == 0
    assert len(printed_words.stored_words(copy)) == 13


def test_a_rebuild_takes_the_words_from_the_cache(worded_index: tuple[Path, Path], tmp_path: Path) -> None:
    index, catalog = worded_index
    report = build_index(catalog, tmp_path / "again", read_text=True, **{**FAST, "size": 128})  # another model
    assert report["words"]["cached"] == 12 and report["words"]["reused"] == 0
    assert printed_words.stored_words(tmp_path / "again") == printed_words.stored_words(index)


def test_reading_needs_words_and_damaged_words_fail_at_load(worded_index: tuple[Path, Path], tmp_path: Path) -> None:
    index, catalog = worded_index
    plain = tmp_path / "plain"
    build_index(catalog, plain, **FAST)
    with pytest.raises(ValueError, match="--read-text"):
        ProductSearcher.load(plain).search(np.zeros((64, 64, 3), np.uint8), read_text=True)
    assert ProductSearcher.load(plain).embed_query(np.zeros((64, 64, 3), np.uint8))[1].get("words") is None
    broken = tmp_path / "broken"
    shutil.copytree(index, broken)
    (broken / printed_words.FILE).write_text("[not, json")
    with pytest.raises(IndexCorruptError, match="words"):
        ProductSearcher.load(broken)
