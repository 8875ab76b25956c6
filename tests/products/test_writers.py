"""Writers of a product index: one build of a folder at a time (a second is refused, naming the first's pid),
builds of different folders share one embedding cache, and a disk that refuses the new index (full,
read-only) gives a clear error and leaves the index in use as it was."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lookalike.cli import main as cli
from lookalike.images.cache import EmbeddingCache
from lookalike.products.search import ProductSearcher
from lookalike.vectors import index_folder
from lookalike.vectors.stores import annoy_store
from model_zoo.weights import fingerprint
from tests.products.tiny_index import ColourEmbedder, build_tiny, colour_photos, folder_digests

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_build_of_the_same_folder_is_refused(
    tiny_catalog: Path, tiny_index: Path, capsys: pytest.CaptureFixture
) -> None:
    holder = _python("""
        import sys, time
        from pathlib import Path
        from lookalike.vectors import index_folder
        with index_folder.write_lock(Path(sys.argv[1])):
            print("locked", flush=True)
            time.sleep(120)
    """, str(tiny_index))
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = folder_digests(tiny_index)
        with pytest.raises(index_folder.IndexLockedError, match=f"process {holder.pid}"):
            build_tiny(tiny_catalog, tiny_index, update=True)
        assert cli.main(["build", str(tiny_catalog), "--out", str(tiny_index), "--update"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {tiny_index} is being built or updated by process {holder.pid}")
        assert folder_digests(tiny_index) == before
    finally:
        holder.kill()
        holder.wait()
    build_tiny(tiny_catalog, tiny_index, update=True)  # the killed holder's lock is taken over
    assert not index_folder.lock_path(tiny_index).exists()


def test_a_build_waits_for_its_background_sklearn_import() -> None:
    # A tiny build reaches the head before the background import ends; two threads importing sklearn at once
    # failed on its circular imports (a CI run, 2026-12-04).
    check = _python("""
        import sys
        from lookalike.products.heads import preload, preloaded
        preload()
        preloaded()
        assert "sklearn.linear_model" in sys.modules
    """)
    _, err = check.communicate(timeout=120)
    assert check.returncode == 0, err


def test_two_builds_sharing_one_cache_both_succeed(tiny_catalog: Path, tmp_path: Path) -> None:
    env = {**os.environ, "LOOKALIKE_CACHE": str(tmp_path / "shared-cache")}
    colour_photos(tiny_catalog, 10, start=100)  # 48 photos: both builds write the cache at once
    code = """
        import sys
        from pathlib import Path
        from tests.products.tiny_index import build_tiny
        print(build_tiny(Path(sys.argv[1]), Path(sys.argv[2]))["items"])
    """
    builds = [_python(code, str(tiny_catalog), str(tmp_path / f"index{n}"), env=env) for n in (1, 2)]
    outcomes = [build.communicate(timeout=300) for build in builds]
    assert [build.returncode for build in builds] == [0, 0], outcomes
    assert [out.strip() for out, _ in outcomes] == ["48", "48"]
    for n in (1, 2):
        assert len(ProductSearcher.load(tmp_path / f"index{n}", embedder=ColourEmbedder()).index.rows) == 48
    os.environ["LOOKALIKE_CACHE"], saved = env["LOOKALIKE_CACHE"], os.environ["LOOKALIKE_CACHE"]
    try:
        cache = EmbeddingCache("product_embeddings", fingerprint(ColourEmbedder.config), ColourEmbedder.dim)
        with cache._connect() as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 48
    finally:
        os.environ["LOOKALIKE_CACHE"] = saved


def test_a_full_disk_mid_build_is_a_clear_error_and_the_index_stays(
    tiny_catalog: Path, tiny_index: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    before = folder_digests(tiny_index)
    real_save = np.save

    def save_until_full(path, array, *args, **kwargs):
        if str(path).endswith("vectors.npy"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(path, array, *args, **kwargs)

    monkeypatch.setattr(annoy_store.np, "save", save_until_full)
    colour_photos(tiny_catalog, 2, start=60)
    with pytest.raises(index_folder.IndexWriteError, match=r"no space left on device while writing into .*"
                       r"\.index\.building-\d+; the index in use at .*index is unchanged") as caught:
        build_tiny(tiny_catalog, tiny_index, update=True)
    assert caught.value.errno == errno.ENOSPC
    assert folder_digests(tiny_index) == before
    assert sorted(p.name for p in tiny_index.parent.iterdir() if p.name.startswith(".index")) == []
    assert len(ProductSearcher.load(tiny_index, embedder=ColourEmbedder()).index.rows) == 18
    monkeypatch.undo()
    assert build_tiny(tiny_catalog, tiny_index, update=True)["items"] == 24


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MB tmpfs (root only; skipped elsewhere): a disk that really fills up, room for an index and its update."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_really_full_disk_leaves_the_index_in_use(tiny_catalog: Path, small_disk: Path) -> None:
    out = small_disk / "index"
    build_tiny(tiny_catalog, out)
    before = folder_digests(out)
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler = small_disk / "filler"
    with open(filler, "wb") as handle:  # leave room for a part of the new index only
        handle.write(b"\0" * max(0, free - 24 * 1024))
    colour_photos(tiny_catalog, 20, start=200)
    with pytest.raises(index_folder.IndexWriteError, match=r"no space left on device.* is unchanged"):
        build_tiny(tiny_catalog, out, update=True)
    assert folder_digests(out) == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "index"]
    assert len(ProductSearcher.load(out, embedder=ColourEmbedder()).index.rows) == 18
    filler.unlink()
    assert build_tiny(tiny_catalog, out, update=True)["items"] == 78
