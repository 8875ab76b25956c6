"""Put a `train-head` winner into a product index, where search ranks categories with it.

The head only makes sense on the features it was trained on and over the same categories, so both
are checked against the index's manifest first. The swap is atomic (a reader sees the old head or
the new one), the manifest records where the head came from, and the index is loaded back once to
prove search can use it; if it cannot, the previous head is restored.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from lookalike.products.index import HEAD, IndexManifest, load_index, locate
from lookalike.products.mlp_head import load_head
from lookalike.products.parts.head_view import HeadView
from lookalike.vectors import index_folder


def index_manifest(index_dir: Path) -> IndexManifest:
    """The manifest of the product index at `index_dir`."""
    return IndexManifest.read(locate(Path(index_dir)))


def _replace(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.installing")
    write(tmp)
    os.replace(tmp, path)


def install_head(head_file: Path, index_dir: Path, embedder_config: dict, source: dict) -> dict:
    """Install `head_file` (head.npz from train-head) into `index_dir`; returns the manifest's head entry.
    Holds the index's write lock (no build may swap the folder meanwhile) and gives the index a new
    generation, so a server following it (`lookalike.products.live`) loads the new head."""
    with index_folder.write_lock(Path(index_dir)):
        entry = _install_head(head_file, index_dir, embedder_config, source)
        index_folder.bump_generation(locate(Path(index_dir)))
    return entry


def _as_loaded(config: dict) -> dict:
    """An embedder config with its weights file as the loaded embedder names it (an absolute, resolved path)."""
    weights = config.get("weights")
    return {**config, "weights": None if weights is None else str(Path(weights).resolve())}


def _install_head(head_file: Path, index_dir: Path, embedder_config: dict, source: dict) -> dict:
    folder = locate(Path(index_dir))
    manifest = index_manifest(folder)
    # the index's embedder as search loads it: a tuned index's weights are its own backbone, which the
    # manifest does not name (`IndexManifest.embedder_config`)
    index_config = manifest.embedder_config(folder)
    if _as_loaded(index_config) != _as_loaded(embedder_config):
        raise ValueError(
            f"the head was trained on {embedder_config} features but the index holds {index_config}: "
            "rerun train-head without --model so it uses the index's embedder"
        )
    head = load_head(head_file)
    if list(head.classes) != list(manifest.category_order):
        raise ValueError(
            f"the head's categories ({len(head.classes)}) differ from the index's "
            f"({len(manifest.category_order)}): train it on the catalog the index was built from"
        )
    backup = folder / f".{HEAD}.previous"
    shutil.copyfile(folder / HEAD, backup)
    previous, parts = manifest.head, dict(manifest.extra)
    # the installed head reads the index's vectors alone: a second view it had goes with the head it replaces
    view = HeadView.entry(manifest)
    manifest.parts.pop(HeadView.name, None)
    manifest.head = {"kind": "train-head", **source, "replaced": {**previous, **({"view": view} if view else {})}}
    try:
        _replace(folder / HEAD, lambda tmp: shutil.copyfile(head_file, tmp))
        manifest.write(folder)
        loaded = load_index(folder)
        _, probe = loaded.store.vectors(loaded.rows.column("id")[:8])
        loaded.close()
        if not np.allclose(loaded.head.predict_proba(probe), head.predict_proba(probe), atol=1e-5):
            raise ValueError("the index loads a different head than the one installed")
    except (OSError, ValueError) as exc:
        os.replace(backup, folder / HEAD)
        manifest.head, manifest.extra = previous, parts
        manifest.write(folder)
        raise RuntimeError(
            f"search cannot use the installed head ({exc}); the previous head is back. A multi-layer head "
            f"needs the index loader to read {HEAD} with lookalike.products.mlp_head.load_head"
        ) from None
    backup.unlink()
    return manifest.head
