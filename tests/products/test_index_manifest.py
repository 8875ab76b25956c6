"""The index's typed manifest (`IndexManifest`): today's manifest.json reads back unchanged, and a foreign,
unknown-version or incomplete one fails with what to do. No model is loaded: these run in a second."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from lookalike.products.index import FORMAT, MANIFEST, IndexCorruptError, IndexManifest, read_manifest
from lookalike.products.parts.head_view import HeadView

#: A manifest.json written by the build before the manifest was typed (an update, with a second view, local
#: features and words: every optional entry).
WRITTEN_BEFORE = Path(__file__).parent / "fixtures" / "manifest_v2.json"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copyfile(WRITTEN_BEFORE, tmp_path / MANIFEST)
    return tmp_path


def test_a_manifest_written_before_reads_and_writes_back_byte_for_byte(folder: Path, tmp_path: Path) -> None:
    manifest = IndexManifest.read(folder)
    assert manifest.format_version == 2 and manifest.items == 15 and manifest.model == "efficientnet_lite1"
    assert HeadView.entry(manifest)["name"] == "efficientnet_lite2"  # where indexes before parts kept it
    assert manifest.part("local_features")["kind"] == "sift" and manifest.part("words")["with_words"] == 5
    assert manifest.update == {"kept": 15, "added": 0, "removed": 0}
    assert set(manifest.parts) == {"thumbnails", "local_features", "words", "neighbour_vote"}
    (tmp_path / "again").mkdir()
    manifest.write(tmp_path / "again")
    assert (tmp_path / "again" / MANIFEST).read_text() == WRITTEN_BEFORE.read_text()
    assert read_manifest(folder) == manifest


def test_optional_entries_are_left_out_and_unknown_keys_kept(folder: Path) -> None:
    raw = json.loads(WRITTEN_BEFORE.read_text())
    for optional in ("update", "local_features", "words", "neighbour_vote"):
        del raw[optional]
    raw["added_by_a_later_version"] = {"x": 1}
    manifest = IndexManifest.from_dict(raw)
    assert manifest.update is manifest.part("local_features") is manifest.part("words") is None
    assert manifest.part("added_by_a_later_version") == {"x": 1}  # a part this version does not know, kept
    assert manifest.to_dict() == raw and list(manifest.to_dict()) == list(raw)


@pytest.mark.parametrize(
    ("format", "message"),
    [
        ("lookalike.product-index/3", "format version 3, and this lookalike reads version 2: rebuild"),
        ("lookalike.product-index/1", "format version 1"),
        ("lookalike.face-gallery/2", "not a product index"),
        (None, "not a product index"),
    ],
)
def test_an_unknown_format_says_to_rebuild(folder: Path, format: str | None, message: str) -> None:
    raw = json.loads(WRITTEN_BEFORE.read_text())
    raw["format"] = format
    (folder / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(IndexCorruptError, match=message) as caught:
        IndexManifest.read(folder)
    assert "index_builder.py" in str(caught.value)


def test_a_damaged_manifest_is_corrupt(folder: Path) -> None:
    raw = json.loads(WRITTEN_BEFORE.read_text())
    del raw["store"]
    (folder / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(IndexCorruptError, match="lacks store"):
        IndexManifest.read(folder)
    (folder / MANIFEST).write_text("[1, 2]")
    with pytest.raises(IndexCorruptError, match="not a product index"):
        IndexManifest.read(folder)
    (folder / MANIFEST).unlink()
    with pytest.raises(IndexCorruptError, match=f"{MANIFEST} is missing"):
        IndexManifest.read(folder)


def test_a_new_manifest_names_todays_format() -> None:
    raw = json.loads(WRITTEN_BEFORE.read_text())
    del raw["format"]
    core = {key: value for key, value in raw.items() if key in IndexManifest.__dataclass_fields__}
    assert IndexManifest(**core).to_dict()["format"] == FORMAT


def _same(found: object, expected: object) -> bool:
    """Equal, floats to 1e-4: Annoy's float32 distances differ in the 6th decimal between CPUs (their SIMD sums),
    which is not a change of what the search answers."""
    if isinstance(expected, float) and isinstance(found, float):
        return abs(found - expected) <= 1e-4
    if isinstance(expected, dict) and isinstance(found, dict):
        return found.keys() == expected.keys() and all(_same(found[k], expected[k]) for k in expected)
    if isinstance(expected, list) and isinstance(found, list):
        return len(found) == len(expected) and all(_same(a, b) for a, b in zip(found, expected, strict=True))
    return found == expected


def test_an_index_written_before_the_part_protocol_searches_as_it_did() -> None:
    """A whole index written by the code before parts (keypoints, words, calibration, thumbnails, neighbour
    vote: tests/products/fixtures/index_v2_today) loads, and every search gives what that code answered."""
    from lookalike.products.search import ProductSearcher
    from tests.products.tiny_index import ColourEmbedder, colour_photos

    root = Path(__file__).parent / "fixtures" / "index_v2_today"
    expected = json.loads((root / "expected_search.json").read_text())
    searcher = ProductSearcher.load(root / "index", ColourEmbedder())
    assert set(searcher.parts) == {"thumbnails", "neighbour_vote", "local_features", "words", "similarity"}
    with tempfile.TemporaryDirectory() as folder:
        queries = colour_photos(Path(folder), 2, start=100, seed=7)
        for photo in sorted(queries.rglob("*.png")):
            for scope in ("category", "all", "blend"):
                found = searcher.search(photo, top_k=8, scope=scope).to_dict()
                del found["timings_ms"]
                # fields added after the fixture was written: an index without the in-catalog decision has none
                assert (found.pop("in_catalog"), found.pop("in_catalog_score")) == (None, None)
                for hit in found["results"]:
                    del hit["path"], hit["thumbnail"]
                assert _same(json.loads(json.dumps(found)), expected[f"{photo.parent.name}/{photo.name}:{scope}"])
    searcher.close()
