"""The face tab's handlers: verify a pair, re-judge it when the threshold moves, and fit the threshold
slider to the chosen model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from lookalike.app.services import Services
from lookalike.app.uploads import read_upload, toast_errors
from lookalike.presentation import draw_boxes, faces_note, verdict_html
from model_zoo import get_face_cfg


def make_verify(services: Services) -> Callable:
    @toast_errors(6)
    def verify(image1: Any, image2: Any, model: str, threshold: float):
        """Tell whether two photos show the same person; returns verdict, distance and face crops."""
        photos = [read_upload(image1, "the first photo"), read_upload(image2, "the second photo")]
        result = services.verifier(model).verify(*photos, threshold=float(threshold))
        boxed = [
            draw_boxes(photo, face.all_boxes, face.index) for photo, face in zip(photos, result.faces, strict=False)
        ]
        crops = [(face.aligned, f"photo {i + 1}") for i, face in enumerate(result.faces)]
        note = faces_note([f.count for f in result.faces], [f.index for f in result.faces])
        if note:
            gr.Warning(note)
        summary = {"distance": result.distance, "metric": services.verifier(model).metric}
        return (
            verdict_html(result.distance, result.threshold, summary["metric"]),
            boxed[0],
            boxed[1],
            crops,
            note,
            summary,
        )

    return verify


def rejudge(summary: dict | None, threshold: float) -> str:
    """Moving the slider re-judges the last pair without recomputing anything."""
    if not summary:
        return gr.skip()
    return verdict_html(summary["distance"], float(threshold), summary["metric"])


def threshold_slider(model: str) -> dict:
    cfg = get_face_cfg(model)
    return gr.update(
        minimum=0.0, maximum=cfg.distance_max, value=cfg.threshold, step=cfg.distance_max / 200
    )
