"""Turn engine results into what a person looks at: captions, verdicts, boxes drawn on photos.

Kept apart from the app (`lookalike.app`, which needs Gradio) so the wording and drawing are tested
without starting a server.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PIL import Image, ImageDraw

BOX_COLOURS = ("#16a34a", "#9ca3af")  # chosen face, other faces
#: What the CLI and the product tab say when a search's in-catalog decision is no (`SearchResult.in_catalog`).
NOT_IN_CATALOG = "Nothing like this in the catalog; the closest items are below"


def similarity_percent(similarity: float) -> str:
    """A hit's similarity (a calibrated share, `lookalike.products.calibration`) as a person reads it."""
    return f"{100.0 * similarity:.0f}%"


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


def hit_details(hit: dict[str, object]) -> str:
    """One catalog item as a shop shows it (the panel under the gallery): title, price, link, category,
    product id and how close it is; never a path on the server."""
    title = html.escape(str(hit.get("title") or hit.get("category") or "Catalog item"))
    lines = [f"### {title}"]
    if hit.get("price") not in (None, ""):
        lines.append(f"**{html.escape(str(hit['price']))}**")
    facts = [f"Category: {html.escape(str(hit.get('category', '')))}"]
    if hit.get("product_id"):
        facts.append(f"Product id: `{html.escape(str(hit['product_id']))}`")
    score = f"Similarity: {similarity_percent(float(hit['similarity']))}"
    if hit.get("cosine") is not None:
        score += f" (cosine {float(hit['cosine']):.3f})"
    facts.append(score)
    if hit.get("inliers"):
        facts.append(f"{hit['inliers']} keypoint matches with your photo")
    if hit.get("shared_words"):
        facts.append("Words on both: " + ", ".join(html.escape(str(word)) for word in hit["shared_words"]))
    lines.append(" · ".join(facts))
    url = str(hit.get("url") or "")
    if url.startswith(("http://", "https://")):
        lines.append(f"[View in the shop]({html.escape(url, quote=True)})")
    return "\n\n".join(lines)


def match_note(inliers: int, shared_words: list[str] | None) -> str:
    """The line under the side-by-side picture of a match: what it draws, in words."""
    parts = [f"{inliers} matched keypoints drawn (the ones one perspective explains)" if inliers
             else "no keypoints one perspective explains"]
    if shared_words:
        parts.append("printed words on both: " + ", ".join(html.escape(word) for word in shared_words))
    return "\n\n*Why it matched: " + "; ".join(parts) + ".*"


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


def draw_named_boxes(image: Image.Image, boxes: Sequence[Sequence[float]], names: Sequence[str],
                     known: Sequence[bool]) -> Image.Image:
    """The photo with every face boxed and named: green for a gallery person, grey for "unknown"."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 200))
    for box, name, named in zip(boxes, names, known, strict=True):
        colour = BOX_COLOURS[0] if named else BOX_COLOURS[1]
        left, top, right, bottom = (float(v) for v in box[:4])
        draw.rectangle([left, top, right, bottom], outline=colour, width=width)
        label_top = max(0.0, top - 12 - width)
        draw.rectangle([left, label_top, left + 7 * len(name) + 6, label_top + 12], fill=colour)
        draw.text((left + 3, label_top), name, fill="white")
    return out


def faces_note(counts: Sequence[int], chosen: Sequence[int]) -> str:
    """Say when a photo held several faces and which one was compared."""
    notes = [
        f"Photo {i + 1}: {count} faces found; compared face #{pick} (the largest unless chosen)."
        for i, (count, pick) in enumerate(zip(counts, chosen, strict=False))
        if count > 1
    ]
    return "\n".join(notes)
