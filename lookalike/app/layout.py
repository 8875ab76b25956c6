"""The page: product search, face verification and "Find a person" tabs, wired to their handlers, plus the
JSON API."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from lookalike.app.api import add_api
from lookalike.app.faces import make_verify, rejudge, threshold_slider
from lookalike.app.manage_page import manage_tab
from lookalike.app.people import SESSION_TTL_S, gallery_name, gallery_threshold, make_people
from lookalike.app.people_tab import people_tab
from lookalike.app.products import index_status, make_explain, make_search, product_examples
from lookalike.app.services import Services
from lookalike.app.sign_in import sign_in_panel
from lookalike.app.uploads import UPLOAD_SOURCES, UPLOAD_TTL_S
from lookalike.products.parts.keypoints import DEFAULT_RERANK
from lookalike.products.search import DEFAULT_SCOPE, SCOPES
from model_zoo import DEFAULT_FACE_MODEL, get_face_cfg

#: The face tab's example pair, shipped in the package (made by assets/make_examples.py).
EXAMPLES = Path(__file__).resolve().parent / "examples"


def build_demo(services: Services) -> gr.Blocks:
    search, search_again = make_search(services)
    verify = make_verify(services)
    face_cfg = get_face_cfg(DEFAULT_FACE_MODEL)
    with gr.Blocks(title="lookalike", delete_cache=(max(1, UPLOAD_TTL_S // 2), UPLOAD_TTL_S)) as demo:
        gr.Markdown("# lookalike\nFind products that look like a photo; check whether two photos show the same person.")
        with gr.Tab("Product search"):
            status = gr.Markdown(services.products.status(), elem_id="index-status")
            with gr.Row():
                with gr.Column(scale=1):
                    query = gr.ImageEditor(
                        label="Query photo (crop to the item you want)",
                        sources=UPLOAD_SOURCES,
                        transforms=("crop",),
                        brush=False,
                        eraser=False,
                        layers=False,
                        elem_id="query",
                    )
                    with gr.Row():
                        scope = gr.Radio(list(SCOPES), value=DEFAULT_SCOPE, label="Search scope")
                        top_k = gr.Slider(1, 100, value=30, step=1, label="Results")
                    verify_hits = gr.Checkbox(
                        value=DEFAULT_RERANK, label="Verify the first hits (matching keypoints lift the same product)",
                        visible=services.products.can_verify(),
                        elem_id="verify-hits",
                    )
                    search_btn = gr.Button("Search", variant="primary", elem_id="search-btn")
                    categories = gr.Label(num_top_classes=5, label="Predicted category")
                with gr.Column(scale=2):
                    catalog_note = gr.Markdown(elem_id="not-in-catalog")  # the in-catalog decision's "no"
                    gallery = gr.Gallery(
                        label="Most similar catalog items", columns=6, height="auto", elem_id="results"
                    )
                    details_md = gr.Markdown()
                    explanation = gr.Image(label="Why it matched", visible=False, interactive=False,
                                           elem_id="match-explanation")
            examples = product_examples(services)
            if examples:
                gr.Examples([[{"background": p, "layers": [], "composite": p}] for p in examples], [query])
            query_state = gr.State(None)  # the query's vector and keypoints, never the photo
            details = gr.State([])
            outputs = [categories, gallery, details_md, details, query_state, catalog_note]
            search_btn.click(
                search, [query, scope, top_k, verify_hits], outputs, preprocess=False, api_name="search_ui",
                api_visibility="private",
            )
            for control in (scope, top_k):  # a new scope or top-k searches again from the stored query
                control.change(search_again, [query_state, scope, top_k], outputs, api_visibility="private")
            gallery.select(make_explain(services), [details, query, query_state], [details_md, explanation],
                           preprocess=False, api_visibility="private")
            if services.products.building or services.products.improving:  # a first start: follow its builds
                timer = gr.Timer(1.0)
                timer.tick(lambda: index_status(services), None, [status, timer, verify_hits],
                           api_visibility="private", show_progress="hidden")

        with gr.Tab("Face verification"):
            with gr.Row():
                image1 = gr.Image(label="Photo 1", sources=UPLOAD_SOURCES, elem_id="face1")
                image2 = gr.Image(label="Photo 2", sources=UPLOAD_SOURCES, elem_id="face2")
            with gr.Row():
                model = gr.Dropdown(services.face_models, value=DEFAULT_FACE_MODEL, label="Face model")
                threshold = gr.Slider(
                    0.0,
                    face_cfg.distance_max,
                    value=face_cfg.threshold,
                    step=face_cfg.distance_max / 200,
                    label="Threshold (same person when distance ≤ threshold)",
                )
            verify_btn = gr.Button("Verify", variant="primary", elem_id="verify-btn")
            verdict = gr.HTML(elem_id="verdict")
            note = gr.Markdown()
            with gr.Row():
                boxed1 = gr.Image(label="Faces found in photo 1", interactive=False)
                boxed2 = gr.Image(label="Faces found in photo 2", interactive=False)
                crops = gr.Gallery(label="Aligned faces compared", columns=2, height=220)
            gr.Examples([[str(EXAMPLES / "astronaut.jpg"), str(EXAMPLES / "astronaut_variant.jpg")]], [image1, image2])
            summary = gr.State(None)
            verify_btn.click(
                verify,
                [image1, image2, model, threshold],
                [verdict, boxed1, boxed2, crops, note, summary],
                preprocess=False,
                api_name="verify_ui",
                api_visibility="private",
            )
            model.change(threshold_slider, model, threshold, api_visibility="private")
            threshold.release(rejudge, [summary, threshold], verdict, api_visibility="private")
        with gr.Tab("Find a person"):
            _people_tab(services)
        admin = gr.State(None)  # the session's admin proof (sign_in.py), server-side; never sent to the browser
        people_tab(services, admin)  # only with --people-index; its corrections only for the admin
        manage_tab(services, admin)  # only when management is on, and shown after the admin signs in
        sign_in_panel(services, admin)  # one sign-in for both, rendered only when management is on
        add_api(services)
    return demo


def _people_tab(services: Services) -> None:
    """Who is in a photo: against the server's gallery, or one the visitor makes here for this session."""
    add, clear, identify, rejudge_people = make_people(services)
    own = gr.State(None, time_to_live=SESSION_TTL_S)  # this session's MemoryGallery; never on disk
    if services.face_gallery is not None:
        gr.Markdown(f"Searching the server's gallery: {gallery_name(services)}.")
    else:
        gr.Markdown("Make a small gallery: add a few photos, each with the person's name. It is kept in memory "
                    "for this browser session only, never written to disk, and no other visitor sees it.")
        with gr.Row():
            person_photo = gr.Image(label="A photo of the person", sources=UPLOAD_SOURCES, elem_id="person-photo",
                                    height=220)
            with gr.Column():
                person_name = gr.Textbox(label="Name", max_length=100, elem_id="person-name")
                add_btn = gr.Button("Add to my gallery", elem_id="add-person-btn")
                clear_btn = gr.Button("Clear my gallery", variant="secondary")
                gallery_note = gr.Markdown()
            known = gr.Gallery(label="My gallery", columns=6, height=160, allow_preview=False, elem_id="my-gallery")
        # "undocumented": callable by a client (each client its own session and gallery), not advertised
        add_btn.click(add, [person_photo, person_name, own], [own, known, gallery_note], preprocess=False,
                      api_name="add_person_ui", api_visibility="undocumented")
        clear_btn.click(clear, [own], [own, known, gallery_note], api_visibility="private")
    with gr.Row():
        probe = gr.Image(label="Photo to search", sources=UPLOAD_SOURCES, elem_id="probe-photo")
        boxed = gr.Image(label="Faces found (numbered)", interactive=False, elem_id="probe-boxed")
    with gr.Row():
        threshold = gr.Slider(0.0, 2.0, value=gallery_threshold(services), step=0.005,
                              label="Threshold (named when the nearest person's distance ≤ threshold)")
        top_k = gr.Slider(1, 10, value=5, step=1, label="Matches per face")
    find_btn = gr.Button("Find", variant="primary", elem_id="find-btn")
    decisions = gr.Markdown(elem_id="decisions")
    matches = gr.Gallery(label="Best matches", columns=10, height=150, object_fit="contain", allow_preview=False,
                         elem_id="matches")
    summary = gr.State(None)  # the faces' distances, never the photo
    find_btn.click(identify, [probe, own, threshold, top_k], [boxed, decisions, matches, summary],
                   preprocess=False, api_name="identify_ui", api_visibility="undocumented")
    threshold.release(rejudge_people, [summary, threshold], decisions, api_visibility="private")
