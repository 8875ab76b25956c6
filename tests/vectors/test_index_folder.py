"""The index folder's life cycle (`lookalike.vectors.index_folder`): atomic swap, crash recovery, stale builds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lookalike.vectors import index_folder

MARKER = "manifest.json"


def _finished(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True)
    (folder / MARKER).write_text(text)
    return folder


def test_swap_in_replaces_the_folder_and_drops_the_backup(tmp_path: Path) -> None:
    out = _finished(tmp_path / "index", "old")
    with index_folder.new_build(out) as building:
        assert building == index_folder.building_dir(out) and building.is_dir()
        (building / MARKER).write_text("new")
        index_folder.swap_in(building, out)
    assert (out / MARKER).read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_a_failed_build_leaves_the_index_untouched(tmp_path: Path) -> None:
    out = _finished(tmp_path / "index", "old")
    with pytest.raises(RuntimeError), index_folder.new_build(out) as building:
        (building / MARKER).write_text("half")
        raise RuntimeError("killed")
    assert (out / MARKER).read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_locate_falls_back_to_the_parked_backup(tmp_path: Path) -> None:
    out = tmp_path / "index"
    assert not index_folder.exists(out, MARKER)
    with pytest.raises(FileNotFoundError):
        index_folder.locate(out, MARKER)
    _finished(index_folder.backup_dir(out), "old")  # died between the two renames
    assert index_folder.locate(out, MARKER) == index_folder.backup_dir(out)
    assert index_folder.exists(out, MARKER)
    _finished(out, "new")
    assert index_folder.locate(out, MARKER) == out


def test_a_folder_without_its_marker_is_not_an_index(tmp_path: Path) -> None:
    (tmp_path / "index").mkdir()
    assert index_folder.locate(tmp_path / "index", MARKER) == tmp_path / "index"
    assert not index_folder.exists(tmp_path / "index", MARKER)


def test_remove_stale_builds_keeps_live_ones(tmp_path: Path) -> None:
    out = tmp_path / "index"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".index.building-{dead.stdout.strip()}"
    live = tmp_path / f".index.building-{os.getpid()}"
    for folder in (stale, live):
        folder.mkdir()
    index_folder.remove_stale_builds(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]


def _hold_lock_in_child(out: Path) -> subprocess.Popen:
    """A separate process holding the write lock on `out` until killed."""
    code = ("import sys, time; from pathlib import Path; from lookalike.vectors import index_folder\n"
            "with index_folder.write_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(120)")
    child = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_second_writer_is_refused_with_the_owners_pid_until_it_dies(tmp_path: Path) -> None:
    out = _finished(tmp_path / "index", "old")
    child = _hold_lock_in_child(out)
    try:
        with pytest.raises(index_folder.IndexLockedError, match=rf"{out}.*process {child.pid}"), \
                index_folder.new_build(out):
            pytest.fail("built while another process held the lock")
        assert issubclass(index_folder.IndexLockedError, RuntimeError)  # the CLI prints it as one line
    finally:
        child.kill()  # kill -9: the OS releases its flock, its lock file stays behind
        child.wait()
    assert index_folder.lock_path(out).is_file()
    with index_folder.new_build(out) as building:  # the dead owner's lock file is taken over
        assert str(os.getpid()) in index_folder.lock_path(out).read_text()
        (building / MARKER).write_text("new")
        index_folder.swap_in(building, out)
    assert (out / MARKER).read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # lock file and build folder gone


def test_the_lock_is_reentrant_in_its_thread_and_refused_to_another(tmp_path: Path) -> None:
    import threading

    out = tmp_path / "index"
    refused = []
    with index_folder.write_lock(out):
        with index_folder.new_build(out) as building:  # a build holds it from its start: new_build re-enters
            assert building.is_dir()

        def other() -> None:
            try:
                with index_folder.write_lock(out):
                    pass
            except index_folder.IndexLockedError as exc:
                refused.append(str(exc))

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert refused and "another thread" in refused[0]
    assert not index_folder.lock_path(out).exists()


def test_a_build_removes_every_dead_builds_folder_even_with_a_reused_pid(tmp_path: Path) -> None:
    out = _finished(tmp_path / "index", "old")
    reused = tmp_path / f".index.building-{os.getppid()}"  # a live pid that is not a build of this folder
    reused.mkdir()
    (index_folder.backup_dir(out)).mkdir()  # a swap that died after its second rename
    with index_folder.new_build(out) as building:
        assert not reused.exists()
        (building / MARKER).write_text("new")
        index_folder.swap_in(building, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_each_swap_gives_a_new_generation_found_during_the_swap_too(tmp_path: Path) -> None:
    out = tmp_path / "index"
    assert index_folder.generation(out) is None
    seen = []
    for text in ("one", "two", "three"):
        with index_folder.new_build(out) as building:
            (building / MARKER).write_text(text)
            seen.append(index_folder.swap_in(building, out))
        assert index_folder.generation(out) == seen[-1]
    assert [g.split()[0] for g in seen] == ["1", "2", "3"] and len(set(seen)) == 3
    out.rename(index_folder.backup_dir(out))  # died between the renames: the parked one is served
    assert index_folder.generation(out) == seen[-1]
    with index_folder.new_build(out) as building:  # the next swap puts the parked one back first
        (building / MARKER).write_text("four")
        assert index_folder.swap_in(building, out).startswith("4 ")
    legacy = _finished(tmp_path / "legacy", "old")  # swapped in before generations existed
    assert index_folder.generation(legacy).startswith("0 unversioned-")
    before = index_folder.generation(out)
    assert index_folder.bump_generation(out).startswith("5 ") and index_folder.generation(out) != before


def test_read_stable_reads_again_when_a_swap_happens_meanwhile(tmp_path: Path) -> None:
    out = tmp_path / "index"
    texts = iter(["first", "second"])

    def swap() -> None:
        with index_folder.new_build(out) as building:
            (building / MARKER).write_text(next(texts))
            index_folder.swap_in(building, out)

    swap()
    reads, closed = [], []

    def read() -> str:
        found = (out / MARKER).read_text()
        reads.append(found)
        if len(reads) == 1:
            swap()  # a build finishes while this reader is half-way
        return found

    value, generation = index_folder.read_stable(out, read, closed.append)
    assert (value, closed, reads) == ("second", ["first"], ["first", "second"])
    assert generation == index_folder.generation(out)


def test_a_refused_write_is_a_clear_error_and_leaves_the_index(tmp_path: Path) -> None:
    import errno

    out = _finished(tmp_path / "index", "old")
    with pytest.raises(index_folder.IndexWriteError, match=r"no space left on device while writing .*part.*"
                       r"the index in use at .*index is unchanged") as caught, index_folder.new_build(out) as b:
        raise OSError(errno.ENOSPC, "No space left on device", str(b / "part"))
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, RuntimeError)
    assert (out / MARKER).read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    with pytest.raises(ValueError), index_folder.new_build(out):  # anything else passes through unchanged
        raise ValueError("a bug")
