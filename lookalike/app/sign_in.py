"""The page's one admin sign-in: a small panel, rendered only when management is on, that fills the session's
proof (`gr.State`, server-side, never sent to the browser). Every admin control of the page (the Manage tab,
the People tab's corrections) is revealed by that proof changing and checks it again on each action
(`services.admin.require`), so the admin signs in once for the whole page."""

from __future__ import annotations

import gradio as gr

from lookalike.app.services import Services


def sign_in_panel(services: Services, proof: gr.State) -> None:
    """The "Admin sign-in" accordion, filling `proof` with the token once it is the admin's."""
    if not services.admin.enabled or (services.manager is None and services.people is None):
        return  # nothing on this page for an admin to change
    with gr.Accordion("Admin sign-in", open=False, elem_id="admin-sign-in"):
        token = gr.Textbox(label="Admin token", type="password", elem_id="admin-token")
        sign_in = gr.Button("Sign in", elem_id="admin-sign-in-btn")
        signed = gr.Markdown(elem_id="admin-signed")

    def login(given: str):
        if not services.admin.accepts(given):
            return gr.skip(), "That is not the admin's token.", ""
        return given.strip(), "Signed in as the admin for this session.", ""

    sign_in.click(login, [token], [proof, signed, token], api_visibility="private")
