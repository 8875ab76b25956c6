"""Catalog management as the admin and a stranger meet it: the app started as a process on a tiny writable
catalog (`--catalog DIR --admin-token ...`), changed through its JSON API and in a real browser."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from bench.cold_start import launched_app, wait_until_ready
from lookalike.products.catalog_edit import AUDIT, MANIFEST

TOKEN = "test-admin-token-4f1c9e"
PRODUCT = "God-Morgon-Orange-Juice"  # the product the tiny catalog lacks
KEPT = {"juice": ["Bravo-Apple-Juice", "Tropicana-Apple-Juice"],
        "milk": ["Arla-Standard-Milk", "Garant-Ecological-Standard-Milk"]}
SERVED_WITHIN_S = 10.0


def _grocery(data_root: Path, category: str, product: str, count: int, start: int = 1) -> list[Path]:
    folder = data_root / "products" / category
    return [folder / f"grocery_train_{product}_{n:03d}.jpg" for n in range(start, start + count)]


def _tiny_catalog(data_root: Path, folder: Path) -> None:
    """14 photos in three categories (copies in the test's folder; the shared data is only read)."""
    photos = [photo for category, products in KEPT.items() for product in products
              for photo in _grocery(data_root, category, product, 3)]
    photos += sorted((data_root / "products" / "shirt").glob("*.jpg"))[:2]
    for photo in photos:
        (folder / photo.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, folder / photo.parent.name / photo.name)


@pytest.fixture(scope="module")
def managed(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Iterator[dict]:
    work = tmp_path_factory.mktemp("manage")
    catalog, index = work / "catalog", work / "index"
    _tiny_catalog(data_root, catalog)
    env = {"LOOKALIKE_CACHE": str(work / "cache"), "GRADIO_TEMP_DIR": str(work / "gradio")}
    for name in ("LOOKALIKE_INDEX", "LOOKALIKE_CATALOG", "LOOKALIKE_ADMIN_TOKEN"):
        os.environ.pop(name, None)
    args = ["--catalog", str(catalog), "--admin-token", TOKEN]
    app = {"work": work, "catalog": catalog, "index": index, "env": env, "args": args}
    with launched_app(index, timeout=240.0, env=env, args=args) as (url, _seconds):
        wait_until_ready(url, timeout=300.0)
        yield {**app, "url": url}


def _client(url: str, token: str | None = TOKEN):
    from gradio_client import Client

    headers = {"Authorization": f"Bearer {token}"} if token else None
    return Client(url, verbose=False, download_files=False, headers=headers)


def _first_hit(client, photo: Path) -> str:
    from gradio_client import handle_file

    return client.predict(handle_file(str(photo)), 5, "category", api_name="/search")["results"][0]["photo"]


def _wait_until(check, timeout: float) -> float:
    start = time.perf_counter()
    while not check():
        assert time.perf_counter() - start < timeout, f"not within {timeout:.0f} s"
        time.sleep(0.5)
    return time.perf_counter() - start


def test_without_the_token_nothing_changes(managed: dict, data_root: Path) -> None:
    from gradio_client import handle_file

    photo = _grocery(data_root, "juice", PRODUCT, 1)[0]
    before = (managed["catalog"] / MANIFEST).read_bytes()
    for client in (_client(managed["url"], None), _client(managed["url"], "wrong-token-0000000")):
        with pytest.raises(Exception, match="Only the admin may change data"):
            client.predict(handle_file(str(photo)), "juice", "Orange", api_name="/add_item")
        with pytest.raises(Exception, match="Only the admin may change data"):
            client.predict("anything", api_name="/remove_item")
    assert (managed["catalog"] / MANIFEST).read_bytes() == before
    assert not list(managed["catalog"].rglob(f"*{PRODUCT}*"))


def test_added_photos_are_found_duplicates_caught_removal_lasts(managed: dict, data_root: Path, tmp_path: Path) -> None:
    from gradio_client import handle_file

    admin = _client(managed["url"])
    *added, fourth = _grocery(data_root, "juice", PRODUCT, 4, start=5)
    ids = []
    for number, photo in enumerate(added):
        answer = admin.predict(handle_file(str(photo)), "juice", f"God Morgon orange {number}", "2.50",
                               "https://shop.example/gm-orange", PRODUCT, False, api_name="/add_item")
        assert answer["duplicate_of"] is None and answer["item_id"], answer
        ids.append(answer["item_id"])
    acknowledged = time.perf_counter()
    rows = {row["item_id"]: row for row in _rows(managed["catalog"])}
    assert all(rows[item]["product_id"] == PRODUCT and (managed["catalog"] / rows[item]["path"]).is_file()
               for item in ids)
    # a fourth photo of the product, never added, finds one of the three first within 10 s of the last answer
    left = SERVED_WITHIN_S - (time.perf_counter() - acknowledged)
    _wait_until(lambda: Path(_first_hit(admin, fourth)).stem in ids, left)

    # one of the three again, and a resized and recompressed copy of it: a duplicate, nothing added
    copy = tmp_path / "copy.jpg"
    with Image.open(added[0]) as image:
        image.resize((image.width // 2, image.height // 2)).save(copy, quality=60)
    for again in (added[0], copy):
        answer = admin.predict(handle_file(str(again)), "juice", "again", api_name="/add_item")
        assert answer == {"item_id": None, "duplicate_of": ids[0]}, again
    assert len(_rows(managed["catalog"])) == len(rows)

    # an edit is served; a removal is gone from searches within 10 s, and after a restart
    admin.predict(ids[1], {"title": "God Morgon orange, 1 l"}, api_name="/update_item")
    assert admin.predict(ids[0], api_name="/remove_item") == {"removed": True, "item_id": ids[0]}
    removed = time.perf_counter()
    photo_of = {row["item_id"]: row["path"] for row in rows.values()}

    def gone() -> bool:
        hits = admin.predict(handle_file(str(added[0])), 30, "all", api_name="/search")["results"]
        return photo_of[ids[0]] not in [hit["photo"] for hit in hits]

    _wait_until(gone, SERVED_WITHIN_S - (time.perf_counter() - removed))
    assert not (managed["catalog"] / photo_of[ids[0]]).exists()
    with launched_app(managed["index"], timeout=240.0, env=managed["env"], args=managed["args"]) as (url, _s):
        wait_until_ready(url, timeout=120.0)
        again = _client(url)
        hits = again.predict(handle_file(str(added[0])), 30, "all", api_name="/search")["results"]
        assert photo_of[ids[0]] not in [hit["photo"] for hit in hits]
        hits = again.predict(handle_file(str(added[1])), 5, "all", api_name="/search")["results"]
        titles = {hit["title"] for hit in hits}
        assert "God Morgon orange, 1 l" in titles

    audit = [json.loads(line) for line in (managed["catalog"] / AUDIT).read_text().splitlines()]
    assert [(line["action"], line["item_id"]) for line in audit] == [
        *(("add", item) for item in ids), ("update", ids[1]), ("remove", ids[0])]
    assert all(line["who"]["role"] == "admin" and line["who"]["via"] == "api" for line in audit)
    for folder in (managed["catalog"], managed["index"]):  # the token is never written anywhere
        assert not any(TOKEN.encode() in path.read_bytes() for path in folder.rglob("*") if path.is_file())


def _rows(catalog: Path) -> list[dict]:
    import csv

    with (catalog / MANIFEST).open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.browser
def test_browser_admin_adds_a_photo_and_finds_it_visitor_sees_no_manage_tab(managed: dict, data_root: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    from tests.test_app import _upload

    photo = _grocery(data_root, "milk", "Arla-Medium-Fat-Milk", 1, start=3)[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        visitor = browser.new_page()
        visitor.goto(managed["url"])
        expect(visitor.get_by_role("tab", name="Product search")).to_be_visible(timeout=60_000)
        expect(visitor.get_by_role("tab", name="Manage")).to_have_count(0)

        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(managed["url"])
        page.get_by_text("Admin sign-in").click(timeout=60_000)
        page.locator("#admin-token input, #admin-token textarea").first.fill(TOKEN)
        page.locator("#admin-sign-in-btn").click()
        page.get_by_role("tab", name="Manage").click(timeout=30_000)
        _upload(page, "#manage-photo", photo)
        page.locator("#manage-category input, #manage-category textarea").first.fill("milk")
        page.locator("#manage-title input, #manage-title textarea").first.fill("Arla medium fat milk")
        page.locator("#manage-add-btn").click()
        try:
            expect(page.locator("#manage-note")).to_contain_text("Added item", timeout=30_000)
        except AssertionError:
            raise AssertionError(f"toasts: {page.locator('.toast-body').all_inner_texts()}") from None
        added = page.locator("#manage-note strong").first.inner_text()
        assert any(row["item_id"] == added for row in _rows(managed["catalog"]))

        client = _client(managed["url"], None)  # a visitor's search finds it within seconds
        _wait_until(lambda: Path(_first_hit(client, photo)).stem == added, SERVED_WITHIN_S)
        page.get_by_role("tab", name="Product search").click()
        _upload(page, "#query", photo)
        page.locator("#search-btn").click()
        page.locator("#results img").first.click(timeout=30_000)
        expect(page.locator("#results .caption-label").first).to_contain_text("Arla medium fat milk", timeout=15_000)
        browser.close()
