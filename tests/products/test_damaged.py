"""A damaged product index: each kind of truncated or garbled file gives an IndexCorruptError naming the file
and the command that rebuilds the index (never a traceback), and the CLI prints it as one line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from lookalike.cli import main as cli
from lookalike.products.index import IndexCorruptError
from lookalike.products.search import ProductSearcher
from tests.products.tiny_index import ColourEmbedder, build_tiny


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for start in range(0, len(data), 97):
        data[start : start + 7] = b"\x5a\xa5garbl"
    path.write_bytes(bytes(data))


DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "truncated .ann": ("annoy/all.ann", _truncate),
    "truncated category .ann": ("annoy/1.ann", _truncate),
    "truncated vectors.npy": ("annoy/vectors.npy", _truncate),
    "garbled ids.npy": ("annoy/ids.npy", _garble),
    "garbled manifest.json": ("manifest.json", _garble),
    "truncated manifest.json": ("manifest.json", _truncate),
    "truncated catalog.sqlite": ("catalog.sqlite", _truncate),
    "garbled catalog.sqlite": ("catalog.sqlite", _garble),
    "garbled head.npz": ("head.npz", _garble),
    "truncated head.npz": ("head.npz", _truncate),
    "garbled local features": ("local/offsets.npy", _garble),
    "truncated local features": ("local/descriptors.npy", _truncate),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.products.tiny_index import colour_photos

    root = tmp_path_factory.mktemp("damaged")
    catalog = colour_photos(root / "catalog", 6)
    build_tiny(catalog, root / "index", local_features=True)
    return catalog, root / "index"


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_each_damaged_file_is_named_with_the_rebuild_command(
    kind: str, built: tuple[Path, Path], tmp_path: Path
) -> None:
    catalog, index = built
    part, damage = DAMAGE[kind]
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    damage(copy / part)
    with pytest.raises(IndexCorruptError) as caught:
        ProductSearcher.load(copy, embedder=ColourEmbedder())
    message = str(caught.value)
    assert Path(part).name in message, message
    assert "lookalike build " in message and f"--out {copy}" in message, message
    if not part.startswith("manifest"):  # the manifest still names the catalog to rebuild from
        assert str(catalog) in message, message


def test_garbled_words_are_named_too(built: tuple[Path, Path], tmp_path: Path) -> None:
    _, index = built
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["words"] = {"items": 18}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    (copy / "words.json").write_bytes(b"\xff{ not json")
    with pytest.raises(IndexCorruptError, match=r"words\.json cannot be read .*lookalike build"):
        ProductSearcher.load(copy, embedder=ColourEmbedder())


def test_the_cli_prints_a_damaged_index_as_one_line(
    built: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    catalog, index = built
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    _truncate(copy / "catalog.sqlite")
    query = sorted((catalog / "red").glob("*.png"))[0]
    assert cli.main(["search", "--index", str(copy), str(query)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "catalog.sqlite is damaged" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
