"""The app as its users meet it: started as a process, called through its named API and in a real browser."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.cold_start import launched_app, wait_until_ready
from lookalike.app import demo
from lookalike.paths import REPO_ROOT
from lookalike.products import index
from lookalike.products.local_features import FOLDER as LOCAL_FEATURES
from lookalike.products.parts.thumbnails import FOLDER as THUMBNAILS
from model_zoo import DEFAULT_FACE_MODEL, get_face_cfg

ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
UPLOAD_TTL_S = 20  # short, so the test can check the purge; longer than a browser attempt takes
UPLOADED: set[str] = set()  # names of the photos the tests send; none may stay on the server


@pytest.fixture(scope="module")
def app_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("app")


def _app_env(work: Path) -> dict[str, str]:
    return {
        "LOOKALIKE_CACHE": str(work / "cache"),
        "GRADIO_TEMP_DIR": str(work / "gradio"),
        "LOOKALIKE_UPLOAD_TTL": str(UPLOAD_TTL_S),
    }


@pytest.fixture(scope="module")
def app_url(app_work: Path) -> Iterator[str]:
    """The app started as a newcomer starts it: no option, an empty cache, so it indexes the bundled demo
    catalog in the background and serves it once ready (the tests wait for the full index, not the quick one
    served meanwhile)."""
    assert demo.available(), "the demo catalog is missing from assets/"
    work = app_work
    env = _app_env(work)
    for name in ("LOOKALIKE_INDEX", "LOOKALIKE_CATALOG"):
        os.environ.pop(name, None)
    with launched_app(None, timeout=240.0, env=env) as (url, _seconds):
        wait_until_ready(url, timeout=400.0, full=True)
        yield url
        deadline = time.monotonic() + 3 * UPLOAD_TTL_S  # the purge runs every TTL/2 for files older than TTL
        while (kept := {p.name for p in (work / "gradio").rglob("*")} & UPLOADED) and time.monotonic() < deadline:
            time.sleep(1)
        assert not kept, f"uploaded photos were kept on the server: {kept}"
        assert not list(demo.DEMO_CATALOG.rglob("*.sqlite")), "the app wrote into the demo catalog"


def _held_out(data_root: Path, category: str) -> Path:
    """A photo of `category` from the shared data that the demo catalog does not hold (nor its examples,
    which Gradio keeps a copy of: a sent photo must not share a name with them)."""
    bundled = {path.name for path in demo.PHOTOS.rglob("*.jpg")}
    bundled |= {path.name.split("_", 1)[1] for path in demo.EXAMPLES.glob("*.jpg")}  # <category>_<file>
    return next(p for p in sorted((data_root / "products" / category).glob("*.jpg")) if p.name not in bundled
                and not p.name.startswith("myntra"))


@pytest.fixture(scope="module")
def client(app_url: str):
    from gradio_client import Client

    return Client(app_url, verbose=False)  # downloads what looks like a file: a hit must not


def test_api_search_returns_the_cli_json(client, app_url: str, data_root: Path) -> None:
    """A plain image in, the JSON of `lookalike search --json` back: by gradio_client, and by plain HTTP
    with the photo inlined as a data: URI (what the curl example in docs/api.md sends)."""
    import httpx
    from gradio_client import handle_file

    from bench.load_test import _call, _data_uri

    query = _held_out(data_root, "milk")
    UPLOADED.add(query.name)
    found = client.predict(handle_file(str(query)), 30, "category", api_name="/search")
    assert found["categories"][0]["label"] == "milk"
    assert len(found["results"]) == 30 and found["results"][0]["rank"] == 1
    assert set(found["results"][0]) == {"rank", "photo", "category", "product_id", "title", "price", "url",
                                        "similarity", "cosine", "distance", "inliers", "shared_words"}
    assert found["in_catalog"] is True and 0.0 <= found["in_catalog_score"] <= 1.0
    watch = data_root / "products" / "watches" / "myntra_10109.jpg"  # the demo catalog sells no watches
    UPLOADED.add(watch.name)
    elsewhere = client.predict(handle_file(str(watch)), 30, "category", api_name="/search")
    assert elsewhere["in_catalog"] is False and len(elsewhere["results"]) == 30  # the closest items still come
    assert elsewhere["results"][0]["similarity"] < 0.2
    first = found["results"][0]
    assert not Path(first["photo"]).is_absolute() and first["photo"].startswith("milk/")  # relative to the catalog
    assert first["title"] and 0.0 <= first["similarity"] <= 1.0 and -1.0 <= first["cosine"] <= 1.0
    # the same photo inlined as a data: URI is the same query as its upload: the same ranking and hits, for
    # the request above and for another scope and top_k (what the URI decodes to, and the arguments passed)
    as_file = {("category", 30): found, ("all", 5): client.predict(handle_file(str(query)), 5, "all",
                                                                    api_name="/search")}
    with httpx.Client(timeout=120) as http:
        inline = {(scope, top_k): _call(http, app_url, "search", [_data_uri(query), top_k, scope])
                  for scope, top_k in as_file}

    def answer(result: dict) -> tuple:
        return (result["scope"], [category["label"] for category in result["categories"]],
                [(hit["rank"], hit["photo"]) for hit in result["results"]])

    for (scope, top_k), expected in as_file.items():
        assert answer(inline[scope, top_k]) == answer(expected), (scope, top_k)
        assert answer(expected)[0] == scope and len(expected["results"]) == top_k
        assert [hit["similarity"] for hit in inline[scope, top_k]["results"]] == pytest.approx(
            [hit["similarity"] for hit in expected["results"]], abs=1e-5)


def test_api_verify_returns_the_cli_json(client, data_root: Path) -> None:
    from gradio_client import handle_file

    faces = data_root / "faces" / "Colin_Powell"
    same, other = sorted(faces.glob("*.jpg"))[:2]
    UPLOADED.update({same.name, other.name})
    verdict = client.predict(handle_file(str(same)), handle_file(str(other)), api_name="/verify")
    assert verdict["same_person"] is True and verdict["model"] == DEFAULT_FACE_MODEL
    assert verdict["threshold"] == get_face_cfg(DEFAULT_FACE_MODEL).threshold
    assert len(verdict["faces"]) == 2 and verdict["pairs_compared"] == 1


def test_api_errors_name_the_users_photo_not_a_server_path(client, app_url: str, tmp_path: Path) -> None:
    import httpx
    from gradio_client import handle_file

    from bench.load_test import _call

    fake = tmp_path / "notes.jpg"
    fake.write_text("not a photo at all")
    with pytest.raises(Exception, match="the query photo is not an image") as error:
        client.predict(handle_file(str(fake)), 10, "all", api_name="/search")
    assert "/tmp" not in str(error.value) and "gradio" not in str(error.value)
    with pytest.raises(Exception, match="the first photo is not an image"):
        client.predict(handle_file(str(fake)), handle_file(str(fake)), api_name="/verify")
    server_file = {"path": "/etc/hostname", "url": None, "meta": {"_type": "gradio.FileData"}}
    with httpx.Client(timeout=60) as http, pytest.raises(RuntimeError, match=r"must be uploaded|not allowed|Cannot"):
        _call(http, app_url, "search", [server_file, 5, "all"])  # the server never opens a file of its own


def test_a_visitors_face_gallery_is_theirs_alone(app_url: str, data_root: Path) -> None:
    """Two clients (two browser sessions): the gallery one makes names Colin Powell for it; the other's
    gallery holds only its own person, so the same photo is not named Colin there."""
    from gradio_client import Client, handle_file

    first, second = Client(app_url, verbose=False), Client(app_url, verbose=False)
    photos = sorted((data_root / "faces" / "Colin_Powell").glob("*.jpg"))[:2]
    tony = sorted((data_root / "faces" / "Tony_Blair").glob("*.jpg"))[0]
    UPLOADED.update(p.name for p in [*photos, tony])
    _crops, note = first.predict(handle_file(str(photos[0])), "Colin", api_name="/add_person_ui")
    assert "Added Colin: 1 of" in note
    _crops, note = second.predict(handle_file(str(tony)), "Tony", api_name="/add_person_ui")
    assert "Added Tony: 1 of" in note  # not 2: the first client's face is not in this gallery
    _boxed, decisions, _matches = first.predict(handle_file(str(photos[1])), 0.66, 5, api_name="/identify_ui")
    assert "Face 1: **Colin**" in decisions
    _boxed, decisions, _matches = second.predict(handle_file(str(photos[1])), 0.66, 5, api_name="/identify_ui")
    assert "Face 1: **unknown** (nearest Tony" in decisions


def _index_files(work: Path) -> dict[str, Path]:
    """One file of each kind in the demo's index folder (under the app's cache)."""
    (folder,) = (work / "cache" / "demo-index").glob("[!.]*")
    kinds = {"vectors": "annoy/*.ann", "catalog": index.CATALOG, "head": index.HEAD, "backbone": index.TUNED_BACKBONE,
             "keypoints": f"{LOCAL_FEATURES}/*.npy",
             "manifest": index.MANIFEST, "thumbnail": f"{THUMBNAILS}/*.jpg"}
    return {kind: next(folder.glob(pattern)) for kind, pattern in kinds.items()}


def _file_status(http, url: str, path: Path) -> int:
    return http.get(f"{url}gradio_api/file={path}").status_code


def test_the_file_route_serves_thumbnails_and_nothing_else_of_the_index(app_url: str, app_work: Path) -> None:
    """A visitor may fetch the gallery's thumbnails; the vectors, catalog database, head and manifest (server
    paths) stay private."""
    import httpx

    files = _index_files(app_work)
    with httpx.Client(timeout=30) as http:
        status = {kind: _file_status(http, app_url, path) for kind, path in files.items()}
    assert status.pop("thumbnail") == 200
    assert set(status.values()) == {403}, status


def test_with_auth_nothing_is_served_before_login_and_the_same_after(app_url: str, app_work: Path) -> None:
    """The same app behind --auth (a restart on the same cache: the demo index is reused)."""
    import httpx

    files = _index_files(app_work)
    app = launched_app(None, timeout=240.0, env=_app_env(app_work), args=["--auth", "shop:secret"])
    with app as (url, _seconds), httpx.Client(timeout=30) as http:
        assert {_file_status(http, url, path) for path in files.values()} <= {401, 403}
        assert http.post(f"{url}login", data={"username": "shop", "password": "secret"}).status_code < 400
        status = {kind: _file_status(http, url, path) for kind, path in files.items()}
    assert status.pop("thumbnail") == 200
    assert set(status.values()) == {403}, status


def _upload(page, selector: str, photo: Path) -> None:
    """Choose a file in an image input, as a user picking it in the file dialog."""
    page.locator(f"{selector} input[type=file]").first.set_input_files(str(photo))
    page.wait_for_timeout(3000)  # the component reads and renders the photo before the click


def _upload_and_click(
    page, url: str, tab: str, photos: dict[str, Path], button: str, outcome, attempts: int = 4
) -> None:
    """Open the tab, upload, click, check the outcome. On a loaded machine the page can lose an upload
    (the image editor draws with WebGL, which headless Chromium emulates on the CPU), so a failed attempt
    is recorded (screenshot and any error toast under tests/artifacts/) and retried on a freshly loaded page."""
    from playwright.sync_api import expect

    for attempt in range(attempts):
        if attempt:
            page.goto(url)
        page.get_by_role("tab", name=tab).click(timeout=60_000)  # a tab's content is rendered when opened
        expect(page.locator(button)).to_be_visible(timeout=60_000)
        for selector, photo in photos.items():
            _upload(page, selector, photo)
        page.locator(button).click()
        try:
            outcome()
            return
        except AssertionError:
            name = f"retry_{button.strip('#')}_{attempt}"
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            toasts = page.locator(".toast-body").all_inner_texts()
            (ARTIFACTS / f"{name}.txt").write_text("\n".join(toasts) or "no error toast")
            if attempt == attempts - 1:
                raise


@pytest.mark.browser
def test_browser_both_tabs(app_url: str, data_root: Path) -> None:
    """Headless Debian Chromium on the demo a newcomer gets: searching a photo the demo catalog does not hold
    fills the gallery with 30 captioned items; choosing a verified hit shows why it matched; verify shows a
    verdict."""
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    query, pack = _held_out(data_root, "dress"), _held_out(data_root, "milk")
    face1, face2 = sorted((data_root / "faces" / "Colin_Powell").glob("*.jpg"))[:2]
    UPLOADED.update({query.name, pack.name, face1.name, face2.name})
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(app_url)
        results = page.locator("#results img")
        _upload_and_click(
            page, app_url, "Product search", {"#query": query}, "#search-btn",
            lambda: expect(results).to_have_count(30, timeout=15_000),
        )
        expect(page.locator("#not-in-catalog")).not_to_contain_text("Nothing like this")
        page.locator("#results img").first.click()  # the preview shows the item's caption
        expect(page.locator("#results .caption-label").first).to_contain_text("%", timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "product_search.png"), full_page=True)

        # a pack of another capture session: its first hit is verified by keypoints, and choosing it shows why
        page.goto(app_url)
        _upload_and_click(
            page, app_url, "Product search", {"#query": pack}, "#search-btn",
            lambda: expect(results).to_have_count(30, timeout=15_000),
        )
        page.locator("#results img").first.click()
        explanation = page.locator("#match-explanation img")
        expect(explanation).to_be_visible(timeout=30_000)
        expect(page.get_by_text("matched keypoints drawn")).to_be_visible()
        width, height = explanation.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert width > 1.5 * height, "the query and the catalog photo side by side"
        page.screenshot(path=str(ARTIFACTS / "match_explanation.png"), full_page=True)

        # a watch: the demo catalog sells none, so the page says so above the closest items
        watch = data_root / "products" / "watches" / "myntra_10109.jpg"
        UPLOADED.add(watch.name)
        page.goto(app_url)
        _upload_and_click(
            page, app_url, "Product search", {"#query": watch}, "#search-btn",
            lambda: expect(results).to_have_count(30, timeout=15_000),
        )
        expect(page.locator("#not-in-catalog")).to_contain_text("Nothing like this in the catalog", timeout=10_000)
        expect(page.get_by_text("not confident")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "not_in_catalog.png"), full_page=True)

        verdict = page.locator("#verdict")
        _upload_and_click(
            page, app_url, "Face verification", {"#face1": face1, "#face2": face2}, "#verify-btn",
            lambda: expect(verdict).to_contain_text("Same person", timeout=15_000),
        )
        page.screenshot(path=str(ARTIFACTS / "face_verification.png"), full_page=True)
        browser.close()
