"""Turn engine results into what a person looks at: captions, verdicts, boxes drawn on photos.

Kept apart from `app.py` so the wording and drawing are tested without starting a server.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PIL import Image, ImageDraw

BOX_COLOURS = ("#16a34a", "#9ca3af")  # chosen face, other faces


def similarity_percent(similarity: float) -> str:
    return f"{100.0 * similarity:.1f}%"


def hit_caption(
    category: str, similarity: float, title: str | None = None, price: str | None = None, inliers: int | None = None
) -> str:
    """One gallery caption: what it is, how close, the keypoint matches of a verified hit (why it ranks above
    closer-looking items), and the shop details when the catalog has them."""
    parts = [similarity_percent(similarity), title or category]  # the score first: captions get cut short
    if inliers:
        parts.append(f"{inliers} keypoint matches")
    if title:
        parts.append(category)
    if price not in (None, ""):
        parts.append(str(price))
    return " · ".join(parts)


def words_read(words: Sequence[str]) -> str:
    """The words read on a query photo (they voted for its category), for the search command and the app."""
    return f"Words read on the photo: {', '.join(words) or 'none legible'}"


def hit_details(fields: dict[str, object]) -> str:
    """Markdown table of one catalog item, for the panel shown when a gallery item is selected."""
    rows = [f"| {key} | {html.escape(str(value))} |" for key, value in fields.items() if value not in (None, "")]
    return "\n".join(["| field | value |", "|---|---|", *rows])


def verdict_html(distance: float, threshold: float, metric: str) -> str:
    """A verdict a person reads at a glance, with the distance drawn against the threshold."""
    same = distance <= threshold
    colour = "#16a34a" if same else "#dc2626"
    words = "Same person" if same else "Different people"
    scale = max(2.0 * threshold, distance * 1.1, 1e-6)
    dist_pct = min(100.0, 100.0 * distance / scale)
    thr_pct = min(100.0, 100.0 * threshold / scale)
    return (
        f'<div class="verdict" style="font-size:1.6em;font-weight:700;color:{colour}">{words}</div>'
        f"<div>{metric} distance <b>{distance:.3f}</b> {'≤' if same else '>'} threshold <b>{threshold:.3f}</b></div>"
        '<div style="position:relative;height:18px;background:#e5e7eb;border-radius:9px;margin-top:6px">'
        f'<div style="width:{dist_pct:.1f}%;height:100%;background:{colour};border-radius:9px"></div>'
        f'<div title="threshold" style="position:absolute;left:{thr_pct:.1f}%;top:-4px;width:3px;height:26px;'
        'background:#111827"></div></div>'
        '<div style="display:flex;justify-content:space-between;font-size:0.8em">'
        "<span>0 (identical)</span><span>▲ threshold</span>"
        f"<span>{scale:.2f}</span></div>"
    )


def draw_boxes(image: Image.Image, boxes: Sequence[Sequence[float]], chosen: int) -> Image.Image:
    """The input photo with every detected face boxed; the face that was compared is green."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 200))
    for index, box in enumerate(boxes):
        colour = BOX_COLOURS[0] if index == chosen else BOX_COLOURS[1]
        draw.rectangle([float(v) for v in box[:4]], outline=colour, width=width)
        draw.text((float(box[0]) + width, float(box[1]) + width), str(index), fill=colour)
    return out


def faces_note(counts: Sequence[int], chosen: Sequence[int]) -> str:
    """Say when a photo held several faces and which one was compared."""
    notes = [
        f"Photo {i + 1}: {count} faces found; compared face #{pick} (the largest unless chosen)."
        for i, (count, pick) in enumerate(zip(counts, chosen, strict=False))
        if count > 1
    ]
    return "\n".join(notes)
