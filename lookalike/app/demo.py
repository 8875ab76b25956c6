"""The bundled demo catalog (`assets/demo_catalog/`): what `python app.py` searches when no index or catalog
is given, so a hosted demo answers the moment a visitor opens it.

The index is built at the first start into the cache folder, not shipped: it depends on the installed
model versions. That start builds a quick index first (`QUICK`: the frozen backbone, no keypoints, no second
view), served while the default index builds and then replaced by it, so a visitor's first search waits for
the quick one only (issue 37; docs/benchmarks.md, demo catalog). It is rebuilt only when the demo catalog or
the build's defaults change (its folder is named by a hash of both), and nothing is ever written under `assets/`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from lookalike import __version__
from lookalike.paths import REPO_ROOT, cache_dir

DEMO_CATALOG = REPO_ROOT / "assets" / "demo_catalog"
PHOTOS, MANIFEST, EXAMPLES = DEMO_CATALOG / "photos", DEMO_CATALOG / "manifest.csv", DEMO_CATALOG / "examples"
_INDEXES = "demo-index"
#: The quick index's build options (`BuildOptions` keywords): the frozen build without its second view.
QUICK = {"fast": True, "head_model": "none"}


def available() -> bool:
    """Whether this install has the demo catalog (a checkout or a Space does; a wheel does not)."""
    return MANIFEST.is_file() and PHOTOS.is_dir()


def examples() -> list[str]:
    """The example queries: photos of every category kept out of the catalog, so none is its own first hit."""
    return sorted(str(path) for path in EXAMPLES.glob("*.jpg")) if EXAMPLES.is_dir() else []


def _key() -> str:
    """A hash of what the index is made from: the manifest, every photo's name and size, the build's defaults."""
    from lookalike.products.build import BuildOptions
    from lookalike.products.parts import PRESETS
    from lookalike.products.tuning_policy import MIRROR_PASS, TuneConfig

    digest = hashlib.sha256(MANIFEST.read_bytes())
    for photo in sorted(PHOTOS.rglob("*.jpg")):
        digest.update(f"{photo.relative_to(PHOTOS)}:{photo.stat().st_size}\n".encode())
    digest.update(json.dumps(asdict(BuildOptions()), sort_keys=True, default=str).encode())
    digest.update(json.dumps(PRESETS, sort_keys=True).encode())  # a new default part (open_set) rebuilds it
    digest.update(json.dumps([asdict(TuneConfig()), MIRROR_PASS]).encode())  # the tuning's too
    digest.update(__version__.encode())
    return digest.hexdigest()[:16]


def index_dir() -> Path:
    """Where this demo catalog's index lives in the cache folder (`LOOKALIKE_CACHE`)."""
    return cache_dir() / _INDEXES / _key()


def complete(folder: Path) -> bool:
    """Whether the index at `folder` is the default build, not the quick one a first start serves meanwhile
    (that one has no keypoints): a start after one stopped early builds the default again."""
    from lookalike.products.index import locate
    from lookalike.products.manifest import read_manifest

    try:
        return read_manifest(locate(folder)).part("local_features") is not None
    except Exception:  # unreadable: the index's own load reports it
        return True


def remove_stale_indexes(keep: Path) -> None:
    """Drop the indexes of earlier demo catalogs or defaults, so updates do not pile up in the cache."""
    for folder in (cache_dir() / _INDEXES).glob("*"):
        if folder.is_dir() and folder.name != keep.name and not folder.name.startswith("."):
            shutil.rmtree(folder, ignore_errors=True)
