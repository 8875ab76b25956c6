"""The "Find a person" tab's handlers: who is in a photo, against the server's face gallery (`--faces-index`)
or one the visitor makes in the tab.

A visitor's gallery is a `MemoryGallery` in their browser session's state: named faces held in this process
only, capped, never written to disk, never seen by another session, and dropped when the session ends. It
embeds with the server's face helpers, so a session costs no model load. A searched photo is never kept:
its faces are boxed and numbered once, and the session keeps only their distances, so moving the threshold
names them again without the photo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from lookalike.app.services import Services
from lookalike.app.uploads import read_upload, toast_errors
from lookalike.faces.gallery import Gallery, IdentifyResult, open_set_threshold
from lookalike.faces.memory_gallery import MemoryGallery
from lookalike.images.loading import load_image
from lookalike.presentation import draw_named_boxes
from model_zoo import DEFAULT_FACE_MODEL

#: Faces a visitor's gallery may hold: enough for a team page, small enough to keep one per session.
MAX_SESSION_FACES = 12
#: Seconds a visitor's gallery outlives their last request (Gradio drops the state then).
SESSION_TTL_S = 3600


def session_gallery(services: Services, gallery: MemoryGallery | None) -> MemoryGallery:
    """This session's gallery, made on its first photo with the server's default face model."""
    if gallery is not None:
        return gallery
    pipeline = services.verifier(DEFAULT_FACE_MODEL).pipeline
    return MemoryGallery(DEFAULT_FACE_MODEL, max_faces=MAX_SESSION_FACES, pipeline=pipeline)


def _gallery_view(gallery: MemoryGallery) -> list[tuple[Image.Image, str]]:
    return [(face.aligned, face.photo) for face in gallery.faces if face.aligned is not None]


MATCH_PX = 96  # "Best matches" thumbnails: small faces, captioned with the name and distance


def _match_picture(match) -> Image.Image | None:
    """The gallery face a match names, as a small thumbnail: its aligned crop (a session gallery), else cut
    from its photo."""
    if match.aligned is not None:
        picture = match.aligned.copy()
    else:
        try:
            photo = load_image(match.photo, name="a gallery photo")
        except (OSError, ValueError):
            return None
        left, top, right, bottom = match.box
        picture = photo.crop((int(left), int(top), int(right), int(bottom)))
    picture.thumbnail((MATCH_PX, MATCH_PX))
    return picture


def _summary(result: IdentifyResult) -> dict:
    """What the slider needs to re-decide: each face's box and its matches' people and distances."""
    return {"faces": [{"box": face.box, "matches": [(m.person, m.distance) for m in face.matches]}
                      for face in result.faces]}


def _decisions(summary: dict, threshold: float) -> str:
    """One line per numbered face: the person named at `threshold`, or unknown, and the nearest distance."""
    lines = []
    for number, face in enumerate(summary["faces"], start=1):
        best = face["matches"][0] if face["matches"] else None
        named = best is not None and best[1] <= threshold
        nearest = f"nearest {best[0]} at distance {best[1]:.3f}" if best else "the gallery is empty"
        lines.append(f"Face {number}: **{best[0] if named else 'unknown'}** ({nearest}; threshold {threshold:.3f})")
    return "\n\n".join(lines)


def make_people(services: Services) -> tuple[Callable, Callable, Callable, Callable]:
    """The tab's handlers: add a named photo, clear the gallery, identify, re-decide at a new threshold."""

    @toast_errors(3)
    def add(photo: Any, name: str, gallery: MemoryGallery | None):
        gallery = session_gallery(services, gallery)
        face = gallery.add(read_upload(photo, "the person's photo"), str(name or ""))
        note = f"Added {face.person}: {len(gallery)} of {gallery.max_faces} faces, kept for this session only."
        return gallery, _gallery_view(gallery), note

    def clear(gallery: MemoryGallery | None):
        if gallery is not None:
            gallery.clear()
        return None, [], "Gallery cleared."

    @toast_errors(4)
    def identify(photo: Any, gallery: MemoryGallery | None, threshold: float, top_k: float):
        image = read_upload(photo, "the photo to search")
        with _searched(services, gallery) as searched:
            if searched is None or not len(searched):
                raise gr.Error("Add a few named photos to the gallery first (above), then search a photo.")
            result = searched.identify(image, top_k=int(top_k), threshold=float(threshold))
        summary = _summary(result)
        boxes = [face.box for face in result.faces]
        boxed = draw_named_boxes(image, boxes, [str(n) for n in range(1, len(boxes) + 1)], [True] * len(boxes))
        matches = [
            (picture, f"{m.person} · {m.distance:.3f}" + (f" (face {number})" if len(result.faces) > 1 else ""))
            for number, face in enumerate(result.faces, start=1)
            for m in face.matches
            if (picture := _match_picture(m)) is not None
        ]
        return boxed, _decisions(summary, float(threshold)), matches, summary

    def rejudge(summary: dict | None, threshold: float):
        """The slider moved: the same faces and distances, named again; nothing embedded."""
        return _decisions(summary, float(threshold)) if summary else gr.skip()

    return add, clear, identify, rejudge


@contextmanager
def _searched(services: Services, own: MemoryGallery | None) -> Iterator[Gallery | None]:
    """The server's gallery (leased: an update may be swapped in meanwhile), else the visitor's own (None
    before their first photo)."""
    if services.face_gallery is not None:
        with services.face_gallery.gallery() as gallery:
            yield gallery
    else:
        yield own


def gallery_threshold(services: Services) -> float:
    """The slider's start: the served gallery model's calibrated identification threshold."""
    model = DEFAULT_FACE_MODEL
    if services.face_gallery is not None and services.face_gallery.loaded:
        with services.face_gallery.gallery() as gallery:
            model = gallery.model
    return float(open_set_threshold(model) or 0.0)


def gallery_name(services: Services) -> str:
    """What the tab says it searches: the server gallery's size, or why it is not served."""
    live = services.face_gallery
    if live is None:
        return ""
    if not live.loaded:
        return f"no gallery loaded ({live.problem})"
    with live.gallery() as gallery:
        return f"{len(gallery)} faces of {len(gallery.people)} people in {Path(gallery.folder).name}"

