"""An index folder served while it is rebuilt: `LiveIndex` notices a new generation and loads it in the
background, the way a search engine keeps answering while its writer swaps segments.

A build swaps a finished folder into place (`lookalike.vectors.index_folder`) and gives it a new generation.
A watcher thread reads that generation every `interval` seconds (one small file read), loads the new folder
beside the one in use, then swaps the reference; a request holds a lease (`with live.lease() as index:`) on
whichever object was current when it began, so requests running during a reload finish on the old one,
which is closed when its last lease ends: memory does not grow over many updates. A new folder that cannot
be loaded leaves the old one serving and says why in `problem`; a folder that could not be loaded at all
leaves nothing to lease, and the watcher loads it as soon as a build makes it readable, with no restart.

One mechanism for every kind of index: the caller gives `load(folder, current)` (current: the object in use,
so a reload can keep its models) and `close(obj)`; `lookalike.products.live.LiveSearcher` is the product one.

    live = LiveIndex("face_index", lambda path, current: FaceGallery.load(path), FaceGallery.close)
    with live.lease() as gallery:
        gallery.identify(photo)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from lookalike.vectors import index_folder

__all__ = ["DEFAULT_INTERVAL", "IndexUnavailableError", "LiveIndex"]
log = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds between two generation checks: an update is served within this plus its load time.
DEFAULT_INTERVAL = 2.0
#: Seconds before a load that failed is tried again though the folder did not change (a transient failure).
RETRY_FAILED = 30.0
_NEVER = "\0never"  # `_attempted` before the first load: differs from any generation, None included
#: Errors a load reports as the index's problem; anything else is a bug, logged with its traceback too.
EXPECTED = (OSError, ValueError, RuntimeError, KeyError)


class IndexUnavailableError(RuntimeError):
    """No index is loaded to serve (none built yet, or the folder is damaged); the message says why."""


@dataclass
class _Slot(Generic[T]):
    value: T
    generation: str | None
    leases: int = 0
    retired: bool = False


class LiveIndex(Generic[T]):
    """The newest readable generation of the index folder at `path`, reloaded in the background.

    Args:
        path: the index folder (a build's `--out`).
        load: makes the served object from a folder: `load(path, current)`; `current` is the object in use
            (None at first), whose models a reload may reuse. Raises for a missing or damaged index.
        close: releases a served object once no request uses it.
        interval: seconds between generation checks; 0: no watcher thread (call `refresh` yourself).
        name: what the index is called in messages and logs ("product index", "face gallery").
    """

    def __init__(
        self,
        path: str | Path,
        load: Callable[[Path, T | None], T],
        close: Callable[[T], None],
        interval: float = DEFAULT_INTERVAL,
        name: str = "index",
    ) -> None:
        self.path, self.interval, self.name = Path(path), interval, name
        self._load, self._close = load, close
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()  # one load at a time (the watcher, or a caller's `refresh`)
        self._slot: _Slot[T] | None = None
        self._attempted: str | None = _NEVER  # the generation last tried, loaded or not
        self._problem: str | None = None
        self.error: Exception | None = None  # what the last failed load raised (None once one loads)
        self._failed_at = 0.0
        self._stop = threading.Event()
        self.reloads = 0  # loads that replaced a served object
        self.served_since: float | None = None  # wall-clock time the served object was put in place
        self.refresh()
        self._thread: threading.Thread | None = None
        if interval > 0:
            self._thread = threading.Thread(target=self._watch, name=f"watch {self.path.name}", daemon=True)
            self._thread.start()

    @contextmanager
    def lease(self) -> Iterator[T]:
        """The object to serve one request with, kept open until the block ends even if a newer one is
        loaded meanwhile.

        Raises:
            IndexUnavailableError: nothing is loaded; the message is `problem`.
        """
        with self._lock:
            slot = self._slot
            if slot is None:
                raise IndexUnavailableError(self._problem or f"no {self.name} is loaded from {self.path}")
            slot.leases += 1
        try:
            yield slot.value
        finally:
            with self._lock:
                slot.leases -= 1
                last = slot.retired and slot.leases == 0
            if last:
                self._dispose(slot)

    @property
    def problem(self) -> str | None:
        """Why the newest index is not served (no index, a damaged one), or None when it is."""
        return self._problem

    @property
    def generation(self) -> str | None:
        """The generation being served (`index_folder.generation`), None when nothing is."""
        slot = self._slot
        return slot.generation if slot else None

    @property
    def loaded(self) -> bool:
        return self._slot is not None

    def refresh(self, force: bool = False) -> bool:
        """Load the folder now if its generation changed since the last try (or `force`); True when a new
        object is served. A failed load keeps the one in use and records the reason in `problem`."""
        with self._refreshing:
            wanted = index_folder.generation(self.path)
            retry = self._problem is not None and time.monotonic() - self._failed_at > RETRY_FAILED
            if wanted == self._attempted and not (force or retry):
                return False
            self._attempted = wanted
            current = self._slot.value if self._slot else None
            try:
                value, loaded = index_folder.read_stable(self.path, lambda: self._load(self.path, current),
                                                         self._close)
            except Exception as exc:  # the watcher must outlive any load failure
                self._failed(exc)
                return False
            self._attempted = loaded
            self._install(_Slot(value, loaded))
            return True

    def _failed(self, exc: Exception) -> None:
        self.error = exc
        self._failed_at = time.monotonic()
        if not isinstance(exc, EXPECTED):
            log.exception("loading the %s at %s failed", self.name, self.path)
        reason = str(exc) if isinstance(exc, EXPECTED) else f"{type(exc).__name__}: {exc}"
        if self._slot is not None:
            self._problem = (f"the {self.name} at {self.path} changed but cannot be loaded ({reason}); still "
                             "serving the previous one")
        else:
            self._problem = reason
        log.warning("%s", self._problem)

    def _install(self, slot: _Slot[T]) -> None:
        with self._lock:
            old, self._slot = self._slot, slot
            self._problem = self.error = None
            self.served_since = time.time()
            last = False
            if old is not None:
                old.retired = True
                last = old.leases == 0
        if old is not None:
            self.reloads += 1
            log.info("serving the %s at %s, generation %s", self.name, self.path, slot.generation)
        if last:
            self._dispose(old)

    def _dispose(self, slot: _Slot[T]) -> None:
        try:
            self._close(slot.value)
        except Exception:  # a close that fails must not fail the request that ended last
            log.exception("closing a replaced %s failed", self.name)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # never let the watcher die
                log.exception("checking the %s at %s failed", self.name, self.path)

    def loaded_or_raise(self) -> LiveIndex[T]:
        """This object, once its first load succeeded; else closed, raising what that load raised (a caller
        that must fail at once, as the one-call API does, rather than serve `problem` later)."""
        if not self.loaded:
            error = self.error
            self.close()
            raise error if error is not None else IndexUnavailableError(
                self._problem or f"no {self.name} is loaded from {self.path}")
        return self

    def close(self) -> None:
        """Stop watching and close the served object once its last lease ends."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(self.interval, 1.0) + 60.0)
        with self._refreshing, self._lock:
            slot, self._slot = self._slot, None
            last = slot is not None and slot.leases == 0
            if slot is not None:
                slot.retired = True
        if last:
            self._dispose(slot)

    def __enter__(self) -> LiveIndex[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for(self, generation: str | None = None, timeout: float = 30.0) -> bool:
        """Block until the served generation differs from `generation` (default: the one served now), or
        `timeout` seconds pass; True if it changed. For tests and scripts that just ran a build."""
        start = self.generation if generation is None else generation
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.generation != start:
                return True
            time.sleep(0.05)
        return self.generation != start
