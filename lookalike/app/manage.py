"""The admin's catalog management behind the Manage tab and the `add_item` / `update_item` / `remove_item`
API: each change is written to the catalog (`lookalike.products.catalog_edit`: photo, manifest row, audit line,
all fsynced) before it is acknowledged, then applied to the served index as an `--update` by one background
thread, so the live index (`LiveSearcher`) serves it within seconds.

The catalog is the truth; the index follows it. Changes made while an update runs are applied together by the
next one; an index that lags the catalog at start (the app was killed after acknowledging a change) is brought
up to date then. The index is written only through `build_index` (its `IndexWriter` lock), so a hand-run
`lookalike build --update` of the same folder is waited for, never raced.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image

from lookalike.app import demo
from lookalike.app.admin import Admin
from lookalike.app.services import ProductIndex
from lookalike.images.loading import load_image
from lookalike.products.catalog_edit import MANIFEST, EditableCatalog
from lookalike.products.duplicates import CANDIDATES, best_match

log = logging.getLogger("lookalike.app")
#: Seconds between two tries of an index update that failed (a locked index, a full disk).
RETRY_S = 5.0


def open_managed_catalog(admin: Admin, catalog: str | None) -> EditableCatalog | None:
    """The catalog the admin edits: `--catalog DIR` (a missing or empty DIR starts as a copy of the bundled
    demo catalog, which is never written), or None when management is off or has no folder to write."""
    if not admin.enabled:
        return None
    if not catalog:
        log.warning("management is off: it needs a writable catalog folder (--catalog DIR; a new DIR starts as "
                    "a copy of the demo catalog, which is never modified)")
        return None
    return EditableCatalog.open(Path(catalog), seed=demo.DEMO_CATALOG if demo.available() else None)


def who(request: Any, via: str) -> dict:
    """The audit log's "who": the admin role, how, the page session or client, never the token."""
    client = getattr(getattr(request, "client", None), "host", None)
    return {"role": "admin", "via": via, "session": getattr(request, "session_hash", None), "client": client}


class CatalogManager:
    """Changes to `catalog`, applied to `products` (the served index) in the background."""

    def __init__(self, catalog: EditableCatalog, products: ProductIndex) -> None:
        self.catalog, self.products = catalog, products
        self._changed = threading.Condition()
        self._revision, self._applied = 0, -1  # -1: compare the index with the catalog once at start
        self.problem = ""  # why the last index update failed, until one succeeds
        threading.Thread(target=self._follow, name="catalog-sync", daemon=True).start()

    # the changes (each durable when it returns)
    def add(self, source: bytes | Path, fields: dict, confirm: bool, by: dict) -> dict:
        """Add a photo (its bytes, or an uploaded file) with its fields. A copy of a catalog photo is not added
        unless `confirm`: {"item_id": new id or None, "duplicate_of": the item it copies or None}."""
        data = source.read_bytes() if isinstance(source, Path) else source
        photo = load_image(data, name="the product photo")  # a bad photo is refused before anything is written
        with Image.open(io.BytesIO(data)) as opened:
            image_format = opened.format or "PNG"
        duplicate_of = self.duplicate_of(data, photo)
        if duplicate_of is not None and not confirm:
            return {"item_id": None, "duplicate_of": duplicate_of}
        item_id = self.catalog.add(data, image_format, fields, by)
        self._notify()
        return {"item_id": item_id, "duplicate_of": duplicate_of}

    def update(self, item_id: str, fields: dict, by: dict) -> dict:
        row = self.catalog.update(item_id, fields, by)
        self._notify()
        return {"item_id": item_id, "item": row}

    def remove(self, item_id: str, by: dict) -> dict:
        self.catalog.remove(item_id, by)
        self._notify()
        return {"removed": True, "item_id": item_id}

    def duplicate_of(self, data: bytes, photo: Image.Image) -> str | None:
        """The catalog item this photo copies: the same bytes, or (among the index's nearest items) a
        resized, recompressed or cropped copy (`lookalike.products.duplicates`)."""
        same = self.catalog.same_content(data)
        if same is not None or not self.products.ready or self.products.building:
            return same
        with self.products.lease() as searcher:
            hits = searcher.search(photo, top_k=CANDIDATES, scope="all", rerank=False).results
        match = best_match(photo, [(hit.id, Path(hit.thumbnail or hit.path)) for hit in hits])
        if match is None:
            return None
        hit = next(hit for hit in hits if hit.id == match.item_id)
        return self.catalog.item_for_photo(hit.path)  # None if it was removed since (the index lags)

    def status(self) -> dict:
        """The catalog's size, and whether the served index has every acknowledged change yet."""
        with self._changed:
            pending = self._applied != self._revision
        return {"items": len(self.catalog.rows()), "index_pending": pending, "problem": self.problem,
                "catalog": str(self.catalog.folder)}

    def wait_applied(self, timeout: float) -> bool:
        """Wait until the index holds every change made so far (tests, the fault run)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._applied == self._revision, timeout)

    # the index following the catalog
    def _notify(self) -> None:
        with self._changed:
            self._revision += 1
            self._changed.notify_all()

    def _follow(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._applied != self._revision)
                wanted = self._revision
            if self.products.building:  # a first-start build: its index is compared when it is in
                time.sleep(0.5)
                continue
            try:
                if self._lags():
                    self._update()
                self.problem = ""
            except Exception as exc:  # kept in the status; tried again
                log.exception("updating the product index from the catalog failed")
                self.problem = f"The index update failed ({exc}); retrying."
                time.sleep(RETRY_S)
                continue
            with self._changed:
                self._applied = wanted
                self._changed.notify_all()

    def _lags(self) -> bool:
        """Whether the served index differs from the catalog (items, or any field)."""
        root = self.catalog.folder
        wanted = {(str((root / row["path"]).resolve()), row["category"], row.get("title") or "",
                   row.get("price") or "", row.get("url") or "", row.get("product_id") or "")
                  for row in self.catalog.rows()}
        if not self.products.ready:
            return True
        with self.products.live.searcher() as searcher:
            served = {(row["path"], row["category"], row["title"] or "", row["price"] or "", row["url"] or "",
                       row["product_id"] or "") for row in searcher.index.rows}
        return served != wanted

    def _update(self) -> None:
        from lookalike.products.build import BuildOptions, build_index
        from lookalike.vectors.index_folder import IndexLockedError

        started = time.perf_counter()
        while True:
            try:
                report = build_index(self.catalog.folder / MANIFEST, self.products.index_dir,
                                     BuildOptions(update=self.products.ready), show_bar=False)
                break
            except IndexLockedError:  # another writer (a hand-run build): wait for it, never race it
                time.sleep(1.0)
        self.products.live.refresh()
        log.info("catalog change applied to the index in %.1f s: %s", time.perf_counter() - started,
                 report.get("update"))
