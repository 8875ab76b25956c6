"""What the app serves from: the product searcher and the face verifiers, loaded once and warmed, so each
request only embeds its photo.

When a built index is served, the default face model loads after the page answers (issue 37), in a
background thread (`Services.load_faces_later`), a face request made first waiting for it. The product index
may not exist yet: the demo catalog's index is built at the first start (`demo`), in a background thread, the
product tab showing the build's progress (`ProductIndex`); such a start loads the face model first, as before.
The demo's first start builds a quick index first and serves it while its default index builds (`demo.QUICK`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike.app import demo
from lookalike.app.admin import Admin
from lookalike.instances import Instances
from lookalike.products.index import index_exists
from lookalike.products.live import IndexUnavailableError, LiveSearcher
from model_zoo import DEFAULT_FACE_MODEL, list_face_models

if TYPE_CHECKING:  # the face modules import torch: loaded with the face model, after the page answers
    from lookalike.faces.live import LiveGallery
    from lookalike.faces.verify import FaceVerifier
    from lookalike.products.search import ProductSearcher

log = logging.getLogger("lookalike.app")


class IndexNotReadyError(RuntimeError):
    """A product search asked for while there is no index: the message says why, or how far its build is."""


class ProductIndex:
    """The product index the tab searches, following its folder on disk (`LiveSearcher`: an update is served
    within seconds, no restart, no failed request), or what the tab says instead: a build's progress, or
    why there is no index (missing, damaged: the message names the file and the command to run)."""

    def __init__(self, index_dir: Path, examples: list[str] | None = None) -> None:
        self.index_dir = index_dir
        self.examples = examples or []  # example queries kept out of the catalog (the demo's)
        self._building: str | None = None  # what a running build is doing, for the page
        self._failed = ""  # why the last build failed
        self._lock = threading.Lock()
        self.live = LiveSearcher(index_dir)  # loads now if it can; watches the folder either way
        if self.ready:
            self._warm_up()

    @property
    def building(self) -> bool:
        """A build runs and no index is served yet: searches wait for it."""
        return self._building is not None and not self.ready

    @property
    def improving(self) -> bool:
        """A build runs behind a served index (the demo's quick one): searches are served meanwhile."""
        return self._building is not None and self.ready

    @property
    def ready(self) -> bool:
        return self.live.loaded

    def status(self) -> str:
        """One line for the product tab: empty while the index is served and no build runs."""
        if self._building is not None:
            return f"⏳ {self._why_not()}"
        return "" if self.ready else f"**{self._why_not()}**"

    def _why_not(self) -> str:
        """Why no search can run now: the build's progress, its failure, or the index's problem."""
        with self._lock:
            if self._building is not None:
                return f"{self._building} The other tabs work meanwhile; this page updates by itself."
        return self._failed or self.live.problem or "No product index is loaded."

    @contextmanager
    def lease(self) -> Iterator[ProductSearcher]:
        """The searcher for one request (kept open until it ends, even if an update is swapped in meanwhile),
        or IndexNotReadyError with the status a user sees."""
        if self.building or not self.ready:
            raise IndexNotReadyError(self._why_not())
        try:
            with self.live.searcher() as searcher:
                yield searcher
        except IndexUnavailableError as exc:
            raise IndexNotReadyError(str(exc)) from None

    def build_in_background(self, catalog: Path, manifest: Path | None = None, quick_first: bool = False) -> None:
        """Build `catalog`'s index into the served folder in a daemon thread, the tab showing its progress;
        the folder's watcher serves it once it is swapped in. `quick_first`: a quick index first (`demo.QUICK`),
        served while the default one builds."""
        self._set_building("Indexing the product catalog (starting).")
        threading.Thread(target=self._build, args=(catalog, manifest, quick_first), name="index-build",
                         daemon=True).start()

    def _build(self, catalog: Path, manifest: Path | None, quick_first: bool) -> None:
        from lookalike.products.build import BuildOptions, build_index

        def say(stage: str) -> None:
            if not self.ready:
                self._set_building(f"Indexing the product catalog ({stage}).")
            else:  # the quick index is served meanwhile
                self._set_building(f"Searching a quick index (no keypoint check, backbone not tuned to the "
                                   f"catalog) while the full one is built ({stage}); it is served when ready.")

        def progress(done: int, total: int, what: str) -> None:
            say(f"{what} {done} of {total}" if done < total else "fitting the category head")

        started = time.perf_counter()
        try:
            builds = ([demo.QUICK] if quick_first else []) + [{}]
            for step, extra in enumerate(builds, 1):
                build_index(catalog, self.index_dir, BuildOptions(manifest=manifest, **extra), progress=progress,
                            show_bar=False)
                self.live.refresh()  # serve it now rather than at the watcher's next look
                self._warm_up()
                if step < len(builds):
                    say("starting")  # the tab says which index it searches before the next build reports
                log.info("product index%s built and served in %.1f s", " (quick)" if extra else "",
                         time.perf_counter() - started)
        except Exception as exc:  # the build's own message, on the tab; the other tabs keep working
            log.exception("building the product index failed")
            self._failed = f"Building the product index failed: {exc}"
        finally:
            self._set_building(None)

    def can_verify(self) -> bool:
        """Whether the served index holds keypoints (the tab then offers to verify the first hits)."""
        if self.building or not self.ready:
            return False
        with self.live.searcher() as searcher:
            return searcher.part("local_features") is not None

    def example_paths(self, count: int) -> list[str]:
        """Example queries: the demo's held-out photos, else one catalog photo of each first category."""
        if self.examples or self.building or not self.ready:
            return self.examples[:count]
        with self.live.searcher() as searcher:
            return searcher.example_paths(count)

    def _warm_up(self) -> None:
        """One search of a blank photo, so the first visitor does not wait for lazy initialisation."""
        with self.live.searcher() as searcher:
            searcher.search(np.full((224, 224, 3), 200, dtype=np.uint8), top_k=1)

    def _set_building(self, what: str | None) -> None:
        with self._lock:
            self._building = what


@dataclass
class Services:
    products: ProductIndex
    face_models: list[str]
    verifiers: Instances[str, FaceVerifier] = field(default_factory=lambda: Instances(_face_verifier))
    face_gallery: LiveGallery | None = None  # `--faces-index`, followed on disk: the people the third tab searches
    people: LiveGallery | None = None  # `--people-index` (cluster-faces), followed on disk: the People tab's
    admin: Admin = field(default_factory=lambda: Admin(None))  # who may change data; off: read-only
    manager: Any = None  # app.manage.CatalogManager: the admin's writable catalog (--admin-token, --catalog DIR)
    faces_deferred: bool = False  # the default face model is left to `load_faces_later` (after the page answers)

    def verifier(self, name: str) -> FaceVerifier:
        """The face model `name`, loaded on its first request and shared by every one after."""
        return self.verifiers.get(name)

    def load_faces_later(self) -> threading.Thread:
        """Load and warm the default face model in a daemon thread (the page already answers; a first start's
        index build goes first): a face request made meanwhile waits for it (`verifier`). Its helper processes
        are spawned, not forked, since the server's threads run (`faces.process_pool`)."""

        def load() -> None:
            _import_gradio_lazies()  # before any request can pay for it
            while self.products.building:  # a first start's build has the cores first (its search is awaited)
                time.sleep(1.0)
            started = time.perf_counter()
            try:
                self.verifier(DEFAULT_FACE_MODEL).warm_up()
            except Exception:  # the request that needs it raises the error again, on its tab
                log.exception("loading the face model failed")
                return
            log.info("face model and helpers loaded in %.1f s (the page answered meanwhile)",
                     time.perf_counter() - started)

        thread = threading.Thread(target=load, name="face-models", daemon=True)
        thread.start()
        return thread


def _face_verifier(name: str) -> FaceVerifier:
    from lookalike.faces.verify import FaceVerifier

    return FaceVerifier(name)


def _import_gradio_lazies() -> None:
    """Gradio imports matplotlib and resolves its backend inside the first request it serves (a second the
    first user waited for): do it at start-up instead."""
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.get_backend()


def load_services(index_dir: Path | None, catalog: str | None, faces_index: Path | None = None,
                  people_index: Path | None = None, defer_faces: bool = True) -> Services:
    """The product index: `index_dir` (built from `catalog` in the background when missing), or with neither
    given the demo catalog's, built in the background at the first start; and the face models.

    The default face model is loaded after the page answers (`defer_faces`, `Services.load_faces_later`) when a
    built index is served: a face request that comes first waits for it, the product tab does not. A first
    start that builds its index loads it before, as it did. A face gallery `faces_index` or
    people index `people_index`, if given, is opened now with its model (a bad one stops the start).

    Raises:
        FileNotFoundError, GalleryError, PeopleError: `faces_index` is not a face gallery or people index, or
            `people_index` not a people index (asked for, so the app stops). Without `faces_index`, the Find a
            person tab searches the people index's named people.
    """
    start = time.perf_counter()
    face_models = list_face_models(available_only=True)
    verifiers: Instances[str, FaceVerifier] = Instances(_face_verifier)
    face_gallery = people = None
    if faces_index is not None or people_index is not None:
        from lookalike.faces.any_gallery import gallery_model
        from lookalike.faces.live import LiveGallery
        from lookalike.faces.people_index import People, PeopleError
    # a first start that builds its index loads the face model first, as before: under load, deferring it
    # measured no faster for the first search (docs/experiments/start-and-build-speed.md)
    builds = not index_exists(product_index_dir(index_dir, catalog))
    deferred = defer_faces and faces_index is None and people_index is None and not builds
    if not deferred:
        # a gallery's helpers embed with its model, loaded now; and before any thread, so they fork with it
        verifier = verifiers.get(DEFAULT_FACE_MODEL)
        _import_gradio_lazies()
        verifier.warm_up()
    if faces_index is not None:
        # which model it needs (the helpers to embed with), read from its manifest: a bad gallery stops the start
        model = gallery_model(faces_index)
        face_gallery = LiveGallery(faces_index, pipeline=verifiers.get(model).pipeline)
    if people_index is not None:
        people = LiveGallery(people_index, pipeline=verifiers.get(gallery_model(people_index)).pipeline)
        with people.loaded_or_raise().lease() as loaded:
            if not isinstance(loaded, People):
                people.close()
                raise PeopleError(f"{people_index} is a face gallery, not a people index (lookalike cluster-faces)")
        face_gallery = face_gallery or people
    face_loaded = time.perf_counter()
    products = _product_index(index_dir, catalog)
    log.info("loaded in %.1f s: face galleries %.1f s, product index %.1f s%s",
             time.perf_counter() - start, face_loaded - start, time.perf_counter() - face_loaded,
             " (building in the background)" if products.building else "")
    return Services(products, face_models, verifiers, face_gallery, people, faces_deferred=deferred)


def product_index_dir(index_dir: Path | None, catalog: str | None) -> Path:
    """The folder the app serves: the one given, `./index` for a catalog given alone, else the demo's."""
    if index_dir is not None:
        return index_dir
    return Path("index") if catalog or not demo.available() else demo.index_dir()


def _product_index(index_dir: Path | None, catalog: str | None) -> ProductIndex:
    folder = product_index_dir(index_dir, catalog)
    serves_demo = index_dir is None and catalog is None and demo.available()
    products = ProductIndex(folder, demo.examples() if serves_demo else None)
    if not products.ready and catalog:
        products.build_in_background(Path(catalog))
    elif not products.ready and serves_demo:
        demo.remove_stale_indexes(keep=folder)
        products.build_in_background(demo.PHOTOS, demo.MANIFEST, quick_first=True)
    elif serves_demo and not demo.complete(folder):  # an earlier first start stopped before the full index
        products.build_in_background(demo.PHOTOS, demo.MANIFEST)
    return products
