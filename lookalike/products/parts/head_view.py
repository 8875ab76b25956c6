"""The head's second view: each photo's vector from a second backbone (EfficientNet-Lite2 by default), which the
category head reads joined to the index's own (`heads.head_input`). Two ImageNet networks err on different
photos, so a frozen backbone's category ranking gains; a tuned one's does not, so the default build (tuned)
has no view and `--fast` (frozen) has one (docs/experiments/second-view.md). Entry: the view's embedder config.
Files: HEAD_VIEWS, each item id's view vector, what an update refits the head on without embedding kept photos
again (search reads none of it)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lookalike.images.cache import Entry
from lookalike.products.embedding import embed_again
from lookalike.products.index import LoadedIndex
from lookalike.products.manifest import IndexManifest
from lookalike.products.options import BuildOptions
from lookalike.products.parts.base import BuildContext, Part, Query

if TYPE_CHECKING:
    from model_zoo.product_embedders import ProductEmbedder

log = logging.getLogger(__name__)
HEAD_VIEWS = "head_views.npz"
#: The second backbone of a frozen build, chosen on the category checks (docs/experiments/). "none": no view.
DEFAULT_HEAD_MODEL = "efficientnet_lite2"


def write_head_views(folder: Path, ids: Iterable[int], vectors: np.ndarray) -> None:
    np.savez(Path(folder) / HEAD_VIEWS, ids=np.asarray(list(ids), np.int64), vectors=vectors)


def read_head_views(folder: Path) -> dict[int, np.ndarray]:
    """Item id -> its view vector. Raises OSError, ValueError or KeyError when the file is missing or damaged."""
    with np.load(Path(folder) / HEAD_VIEWS, allow_pickle=False) as stored:
        return dict(zip(stored["ids"].tolist(), stored["vectors"], strict=True))


class HeadView(Part):
    name = "head_view"
    option = "head_model"
    unavailable = "this index's category head reads no second view"

    def __init__(self, embedder: ProductEmbedder) -> None:
        self.embedder = embedder

    @classmethod
    def chosen(cls, options: BuildOptions, before: IndexManifest | None, tuned: bool, preset: bool) -> bool:
        """An update keeps its index's view; a fresh build has one when `head_model` names another model than
        the index's, or by default when the backbone is frozen."""
        if before is not None:
            return cls.entry(before) is not None
        if options.head_model is not None:
            return options.head_model not in ("none", options.model)
        return preset and not tuned

    @classmethod
    def entry(cls, manifest: IndexManifest) -> dict | None:
        return manifest.part(cls.name) or manifest.head.get("view")  # indexes before parts kept it in the head's

    @classmethod
    def setup(cls, options: BuildOptions, before: IndexManifest | None) -> ProductEmbedder:
        from model_zoo.product_embedders import create_embedder

        if before is not None:
            return create_embedder(**cls.entry(before), device=options.device)
        return create_embedder(options.head_model or DEFAULT_HEAD_MODEL, device=options.device)

    @classmethod
    def fit(cls, build: BuildContext) -> None:
        known = (lambda wanted: cls._known(build, wanted)) if build.previous else None
        views = embed_again(build.embedded, build.state[cls.name], build.show_bar, known, build.engine)
        build.head_views.append(views)
        build.state[f"{cls.name}.vectors"] = views

    @staticmethod
    def _known(build: BuildContext, wanted: Iterable[str]) -> dict[str, Entry]:
        """The previous index's view vectors of the `wanted` contents; none when its file cannot be read, and
        the update embeds them again."""
        previous = build.previous
        try:
            by_id = read_head_views(previous.folder)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("the index's head views cannot be read (%s): embedding them again", exc)
            return {}
        rows = [previous.rows[digest] for digest in set(wanted) if previous.rows.get(digest, {}).get("id") in by_id]
        return previous.entries(rows, [by_id[row["id"]] for row in rows])

    @classmethod
    def write(cls, build: BuildContext, folder: Path) -> dict:
        write_head_views(folder, build.ids, build.state[f"{cls.name}.vectors"])
        return build.state[cls.name].config

    @classmethod
    def open(cls, index: LoadedIndex, entry: dict, current: Part | None = None) -> HeadView:
        if isinstance(current, HeadView) and current.embedder.config == entry:
            return cls(current.embedder)
        from model_zoo.product_embedders import create_embedder

        return cls(create_embedder(**entry))

    def cue(self, query: Query) -> None:
        if query.photo is not None and self.name not in query.cues:
            query.cues[self.name] = self.embedder.embed([query.photo])[0]

    def head_input(self, query: Query) -> np.ndarray:
        if self.name not in query.cues:
            raise ValueError(
                f"this index's category head also reads the query's {self.embedder.name} vector: search with the "
                "photo, or pass the cues `query_cues` gives"
            )
        return query.cues[self.name]
