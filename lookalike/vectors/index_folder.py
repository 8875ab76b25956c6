"""The life cycle of an index folder on disk, shared by every index kept as one folder (the product index,
a face gallery): one writer at a time, build beside it, swap it in atomically, find it again after a crash,
and tell a reader cheaply that it changed.

A new index is written to a temporary sibling folder (`building_dir`) and is complete once its marker file
(its manifest, written last) is there; `swap_in` then flushes it to disk, parks the previous folder as a
backup, renames the new one into place and deletes the backup. A build that dies at any point leaves the
previous index loadable and unchanged: before the first rename nothing moved, and between the two renames
`locate` finds the parked backup (and the next `swap_in` puts it back first). Temporary folders of builds
that died are removed by the next build.

Writers. `new_build` (and `write_lock`, for a build that reads the index it replaces before writing) holds an
exclusive `flock` on a lock file beside the folder (`lock_path`, holding the owner's pid, host and start
time): a second writer of the same folder is refused at once with `IndexLockedError` naming the owner. The
OS releases the lock when its process dies, so the lock file of a killed build is simply taken over.

Readers. Each swap writes a new generation (`GENERATION`: a counter and a build id) into the folder it puts
in place, and `generation` reads it with one small file read: a server compares it every few seconds and
reloads when it changed (`lookalike.vectors.live`); `read_stable` loads an index again should it be
swapped while it was being read, so a reader never mixes the parts of two builds.

    with index_folder.new_build(out) as building:
        ...write every part of the index into `building`, its marker file last...
        index_folder.swap_in(building, out)

This module names no file of any index but its own `GENERATION`: the caller passes its marker file.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

__all__ = [
    "GENERATION",
    "IndexLockedError",
    "IndexWriteError",
    "backup_dir",
    "building_dir",
    "bump_generation",
    "exists",
    "generation",
    "locate",
    "lock_path",
    "new_build",
    "read_stable",
    "remove_stale_builds",
    "swap_in",
    "write_lock",
]
log = logging.getLogger(__name__)
T = TypeVar("T")

#: The file in an index folder naming its generation ("<counter> <build id>"), written by `swap_in`.
GENERATION = ".generation"
#: Errors that mean the disk refused the write (full, over quota, read-only, not allowed), not a bug.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}


class IndexLockedError(RuntimeError):
    """Another live process (or thread) is building or updating the same index folder."""


class IndexWriteError(RuntimeError):
    """The disk refused to take the new index (full, read-only, no permission); the index in use is unchanged.
    `errno` is the refused write's."""

    def __init__(self, message: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_


def building_dir(out: Path) -> Path:
    """The temporary sibling folder this process builds a new index for `out` in (hidden, named by pid)."""
    out = Path(out)
    return out.with_name(f".{out.name}.building-{os.getpid()}")


def backup_dir(index_dir: Path) -> Path:
    """Where `swap_in` parks the previous index while renaming the new one into place."""
    index_dir = Path(index_dir)
    return index_dir.with_name(f".{index_dir.name}.previous")


def lock_path(out: Path) -> Path:
    """The lock file beside `out` that its one writer holds (`write_lock`)."""
    out = Path(out)
    return out.with_name(f".{out.name}.lock")


def remove_stale_builds(out: Path) -> None:
    """Delete the temporary folders left for `out` by builds that were killed (their process is gone);
    a build still running (even another user's) keeps its folder."""
    out = Path(out)
    for folder in out.parent.glob(f".{out.name}.building-*"):
        suffix = folder.name.rsplit("-", 1)[1]
        pid = int(suffix) if suffix.isdigit() else 0
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, ValueError, OverflowError):
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            continue


def _remove_other_builds(out: Path) -> None:
    """Under the write lock no other build of `out` can be running, so every temporary folder but this
    process's is a dead build's, even one whose pid a new process reuses (as after a container restart)."""
    mine = building_dir(out)
    for folder in Path(out).parent.glob(f".{Path(out).name}.building-*"):
        if folder != mine:
            shutil.rmtree(folder, ignore_errors=True)


# --- the writer lock -------------------------------------------------------------------------------------


@dataclass
class _Held:
    fd: int
    thread: int
    depth: int


_held: dict[str, _Held] = {}  # lock file -> this process's hold on it (re-entered by the same thread)
_held_guard = threading.Lock()


def _owner(fd: int) -> dict:
    """What the lock file's holder wrote about itself (empty if nothing readable)."""
    try:
        raw = os.pread(fd, 4096, 0)
        found = json.loads(raw.decode()) if raw.strip() else {}
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(owner: dict) -> str:
    if not owner:
        return "another process"
    host = owner.get("host")
    here = "" if host in (None, socket.gethostname()) else f" on {host}"
    since = f", since {owner['started']}" if owner.get("started") else ""
    return f"process {owner.get('pid', '?')}{here} ({owner.get('command', 'a build')}{since})"


def _write_error(exc: OSError, out: Path, doing: str, into: Path | None = None) -> IndexWriteError:
    """The message for a write the disk refused: what failed, on which file, and that `out` is untouched."""
    reason = (exc.strerror or str(exc)).lower()
    where = f" while writing {exc.filename}" if exc.filename else f" while writing into {into}" if into else ""
    return IndexWriteError(f"cannot {doing} for {out}: {reason}{where}; the index in use at {out} is unchanged "
                           "(free some space or fix the folder's permissions, then build again)", exc.errno)


def _acquire(out: Path) -> int:
    """An fd holding the exclusive flock on `lock_path(out)`, its owner written in; raises IndexLockedError."""
    path = lock_path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(exc, out, "create the folder") from exc
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _write_error(exc, out, "create the lock file") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _owner(fd)
            os.close(fd)
            raise IndexLockedError(
                f"{out} is being built or updated by {_describe(owner)}: wait for it to finish, or stop it "
                f"(lock file {path})"
            ) from None
        try:  # the previous holder may have deleted the file between our open and our flock: lock the new one
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    if dead := _owner(fd):
        log.info("taking over %s from %s, which is gone", path, _describe(dead))
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
          "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
    except OSError:
        pass  # the lock holds without its note; only the message a second writer gets is poorer
    return fd


def _command() -> str:
    try:
        args = Path("/proc/self/cmdline").read_bytes().split(b"\0")
        return " ".join(Path(args[0].decode()).name if i == 0 else a.decode() for i, a in enumerate(args) if a)[:200]
    except OSError:
        return "a build"


@contextmanager
def write_lock(out: Path) -> Iterator[None]:
    """Hold the one writer's lock on the index folder `out` while the block runs; the same thread may enter
    it again (a build holds it from reading the previous index to its swap, and `new_build` inside).

    Raises:
        IndexLockedError: another process or thread holds it; the message names the owner's pid.
        IndexWriteError: the lock file cannot be created beside `out` (a read-only or full disk).
    """
    out = Path(out)
    key = str(lock_path(Path(os.path.abspath(out))))
    me = threading.get_ident()
    with _held_guard:
        held = _held.get(key)
        if held is not None and held.thread != me:
            raise IndexLockedError(f"{out} is being built or updated by another thread of this process")
        if held is not None:
            held.depth += 1
    if held is not None:
        try:
            yield
        finally:
            with _held_guard:
                held.depth -= 1
        return
    fd = _acquire(out)
    with _held_guard:
        _held[key] = _Held(fd, me, 1)
    try:
        yield
    finally:
        with _held_guard:
            del _held[key]
        with suppress(OSError):
            os.unlink(key)  # while still locked: a writer that opened it meanwhile notices and locks afresh
        os.close(fd)


# --- building and swapping -------------------------------------------------------------------------------


def _is_write_error(exc: BaseException) -> bool:
    if isinstance(exc, IndexWriteError):
        return False
    if isinstance(exc, OSError):
        return exc.errno in WRITE_ERRNOS
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("disk is full" in text or "readonly" in text
                                                          or "disk i/o error" in text)


@contextmanager
def new_build(out: Path) -> Iterator[Path]:
    """A fresh `building_dir(out)`, under `write_lock(out)` (temporary folders of dead builds removed first),
    deleted on leaving unless `swap_in` moved it into place: whatever fails while it is written, the index
    at `out` is untouched.

    Raises:
        IndexLockedError: another build of `out` is running.
        IndexWriteError: the disk refused a write (full, read-only): the message names the file and says
            the index in use is unchanged.
    """
    out = Path(out)
    with write_lock(out):
        _remove_other_builds(out)
        building = building_dir(out)
        try:
            shutil.rmtree(building, ignore_errors=True)
            building.mkdir(parents=True)
            yield building
        except (OSError, sqlite3.OperationalError) as exc:
            if not _is_write_error(exc):
                raise
            doing = "write the new index" if building.is_dir() else "create the build folder"
            if isinstance(exc, sqlite3.OperationalError):  # SQLite names neither the errno nor the file
                code = errno.ENOSPC if "full" in str(exc) else errno.EROFS if "readonly" in str(exc) else errno.EIO
                refused = OSError(code, f"{os.strerror(code)} (SQLite: {exc})")
                raise _write_error(refused, out, doing, building) from exc
            raise _write_error(exc, out, doing, building) from exc
        finally:
            shutil.rmtree(building, ignore_errors=True)


def _read_generation(folder: Path) -> str | None:
    try:
        return (folder / GENERATION).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def _next_generation(out: Path) -> str:
    current = generation(out) or ""
    counter = current.split(" ", 1)[0]
    return f"{int(counter) + 1 if counter.isdigit() else 1} {uuid.uuid4().hex[:12]}"


def _sync(folder: Path) -> None:
    """Flush the filesystem holding `folder` (syncfs; sync where there is none), so a power cut after the
    swap cannot leave renamed folders holding files the disk never got. A kill alone needs none of this."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def swap_in(building: Path, out: Path) -> str:
    """Replace the folder `out` with the finished `building` folder, under a new generation (returned): the
    previous folder (if any) is parked at `backup_dir(out)` until the new one is in place, then deleted. A
    backup left by a swap that died between its renames is put back first, so `out` is never missing for
    long. Call it inside `new_build` (it needs the write lock)."""
    building, out = Path(building), Path(out)
    new = _next_generation(out)
    (building / GENERATION).write_text(new + "\n")
    _sync(building)
    previous = backup_dir(out)
    if not out.exists() and previous.is_dir():
        previous.rename(out)  # a swap died between its renames: the parked index is the one in use
    shutil.rmtree(previous, ignore_errors=True)
    if out.exists():
        out.rename(previous)
    building.rename(out)
    _fsync_dir(out.parent)
    shutil.rmtree(previous, ignore_errors=True)
    return new


def bump_generation(index_dir: Path) -> str:
    """Give the index at `index_dir`, changed in place (a head installed into it), a new generation, so
    readers reload it; call it under `write_lock`."""
    folder = Path(index_dir)
    new = _next_generation(folder)
    tmp = folder / f"{GENERATION}.writing"
    tmp.write_text(new + "\n")
    os.replace(tmp, folder / GENERATION)
    return new


# --- reading -----------------------------------------------------------------------------------------------


def locate(index_dir: Path, marker: str) -> Path:
    """The folder to read for the index at `index_dir`: the folder itself when it is there, else the parked
    backup (holding its `marker` file) should a process have died between `swap_in`'s two renames.

    Raises:
        FileNotFoundError: neither is there.
    """
    index_dir = Path(index_dir)
    if index_dir.is_dir():
        return index_dir
    if (backup_dir(index_dir) / marker).is_file():
        return backup_dir(index_dir)
    raise FileNotFoundError(f"no index at {index_dir}")


def exists(index_dir: Path, marker: str) -> bool:
    """Whether a finished index (one holding its `marker` file) is there to read at `index_dir`."""
    try:
        return (locate(index_dir, marker) / marker).is_file()
    except FileNotFoundError:
        return False


def generation(index_dir: Path) -> str | None:
    """The generation of the index at `index_dir` (its `GENERATION`, or the parked backup's during a swap):
    a string that changes whenever a build swaps in a new folder or one is changed in place; None when no
    index is there. Costs a file read or two, so a server may call it per request. A folder swapped in
    before generations existed is named by its inode and modification time instead."""
    index_dir = Path(index_dir)
    backup = backup_dir(index_dir)
    for _ in range(3):  # a swap may move the folders between two of these reads: look again
        for folder in (index_dir, backup):
            if (found := _read_generation(folder)) is not None:
                return found
            try:
                stat = folder.stat()
            except (FileNotFoundError, NotADirectoryError):
                continue
            if _read_generation(folder) is None and (folder == index_dir or not index_dir.exists()):
                return f"0 unversioned-{stat.st_ino}-{stat.st_mtime_ns}"
            break  # it was swapped meanwhile: look again
        else:
            return None
    return None


def read_stable(
    index_dir: Path, read: Callable[[], T], close: Callable[[T], None], attempts: int = 5
) -> tuple[T, str | None]:
    """`read()` the index at `index_dir` and the generation it read, again whenever a swap replaced the folder
    meanwhile (its parts might then come from two builds); a `read` that failed during a swap is retried too.
    Returns (what `read` returned, its generation)."""
    for attempt in range(attempts):
        before = generation(index_dir)
        try:
            found = read()
        except Exception:
            if generation(index_dir) != before and attempt < attempts - 1:
                time.sleep(0.05)
                continue
            raise
        after = generation(index_dir)
        if after == before or attempt == attempts - 1:
            return found, before  # a read swapped under every time: `before`, so a watcher loads it again
        close(found)
    raise AssertionError("unreachable")
