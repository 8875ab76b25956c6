"""The admin's side of the page and the API: `add_item`, `update_item`, `remove_item`, `catalog_status`
(each refused, changing nothing, without `Authorization: Bearer <admin token>`), and the Manage tab, which only
a session that signed in with the token sees (its proof kept in server-side `gr.State`, never in the browser).
A server without management (`--admin-token` and `--catalog DIR`) renders no sign-in and no tab."""

from __future__ import annotations

import gradio as gr
from gradio.data_classes import FileData

from lookalike.app.manage import CatalogManager, who
from lookalike.app.services import Services
from lookalike.app.uploads import UPLOAD_SOURCES, toast_errors, upload_source, user_errors
from lookalike.products.catalog_edit import EDITABLE, UnknownItemError

COLUMNS = ["item_id", "category", "title", "price", "url", "product_id", "path"]
SHOWN_ROWS = 500  # the items table shows this many matching rows (the filter finds the rest)


def _manager(services: Services, request: gr.Request | None, session: str | None = None) -> CatalogManager:
    services.admin.require(request, session)
    if services.manager is None:
        raise gr.Error("This server has no writable catalog: start it with --catalog DIR to manage one.")
    return services.manager


def _changes(run):
    """A change's errors as messages: an unknown item id reads as one, not as a KeyError."""
    with user_errors():
        try:
            return run()
        except UnknownItemError as exc:
            raise gr.Error(str(exc)) from None


def add_manage_api(services: Services) -> None:
    """Register the management endpoints on the Blocks being built (always: without management they say so)."""

    def add_item(photo: FileData, category: str, title: str = "", price: str = "", url: str = "",
                 product_id: str = "", confirm: bool = False, request: gr.Request = None) -> dict:
        """Add a product photo with its fields to the catalog (admin only): {"item_id", "duplicate_of"}. A copy of
        a catalog photo (same file, resized, recompressed, cropped) is not added unless `confirm`: item_id null."""
        manager = _manager(services, request)
        fields = {"category": category, "title": title, "price": price, "url": url, "product_id": product_id}
        return _changes(lambda: manager.add(upload_source(photo, "the product photo"), fields, bool(confirm),
                                            who(request, "api")))

    def update_item(item_id: str, fields: dict, request: gr.Request = None) -> dict:
        """Change some of an item's fields (category, title, price, url, product_id; admin only)."""
        manager = _manager(services, request)
        return _changes(lambda: manager.update(str(item_id), dict(fields or {}), who(request, "api")))

    def remove_item(item_id: str, request: gr.Request = None) -> dict:
        """Remove an item and its photo from the catalog (admin only): {"removed": true}."""
        manager = _manager(services, request)
        return _changes(lambda: manager.remove(str(item_id), who(request, "api")))

    def catalog_status(request: gr.Request = None) -> dict:
        """The catalog's size and whether the served index holds every acknowledged change (admin only)."""
        return _manager(services, request).status()

    for endpoint in (add_item, update_item, remove_item, catalog_status):
        gr.api(endpoint, api_name=endpoint.__name__)


def _table(manager: CatalogManager, wanted: str = "") -> list[list[str]]:
    words = wanted.lower().split()
    rows = [[row.get(column) or "" for column in COLUMNS] for row in manager.catalog.rows()]
    return [row for row in rows if all(word in " ".join(row).lower() for word in words)][:SHOWN_ROWS]


def manage_tab(services: Services, proof: gr.State) -> None:
    """The Manage tab, rendered only when management is on and shown once the session's `proof` (the page's
    sign-in, `sign_in.py`) is the admin's."""
    if services.manager is None or not services.admin.enabled:
        return
    with gr.Tab("Manage", visible=False, elem_id="manage-tab") as tab:
        status = gr.Markdown(elem_id="manage-status")
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Add a product")
                photo = gr.Image(label="Product photo", sources=UPLOAD_SOURCES, type="filepath",
                                 elem_id="manage-photo", height=260)
                fields = {name: gr.Textbox(label=name.replace("_", " ").capitalize(), elem_id=f"manage-{name}")
                          for name in EDITABLE}
                confirm = gr.Checkbox(label="Add it even if it copies a catalog photo", elem_id="manage-confirm")
                add_btn = gr.Button("Add to the catalog", variant="primary", elem_id="manage-add-btn")
                note = gr.Markdown(elem_id="manage-note")
            with gr.Column():
                gr.Markdown("### Edit or remove an item")
                wanted = gr.Textbox(label="Filter (words in any field)", elem_id="manage-filter")
                table = gr.Dataframe(headers=COLUMNS, interactive=False, elem_id="manage-items", max_height=320)
                item_id = gr.Textbox(label="Item id", elem_id="manage-item-id")
                edits = {name: gr.Textbox(label=name.replace("_", " ").capitalize(), elem_id=f"manage-edit-{name}")
                         for name in EDITABLE}
                with gr.Row():
                    save_btn = gr.Button("Save changes", elem_id="manage-save-btn")
                    remove_btn = gr.Button("Remove item", variant="stop", elem_id="manage-remove-btn")
                edit_note = gr.Markdown(elem_id="manage-edit-note")
    def _status(manager: CatalogManager) -> str:
        state = manager.status()
        pending = "the index is being updated" if state["index_pending"] else "the index is up to date"
        return f"{state['items']} items in the catalog; {pending}. {state['problem']}".strip()

    @toast_errors(3)
    def reveal(value: str | None):
        manager = _manager(services, None, value)
        return gr.Tab(visible=True), _status(manager), _table(manager)

    @toast_errors(3)
    def add(picture, proof_value, confirm_value, category, title, price, url, product_id, request: gr.Request):
        manager = _manager(services, request, proof_value)
        given = {"category": category, "title": title, "price": price, "url": url, "product_id": product_id}
        source = upload_source(picture, "the product photo")
        done = _changes(lambda: manager.add(source, given, bool(confirm_value), who(request, "page")))
        if done["item_id"] is None:
            message = (f"Not added: this photo copies item **{done['duplicate_of']}**. Tick the box to add it "
                       "anyway.")
        else:
            also = f" (a copy of {done['duplicate_of']})" if done["duplicate_of"] else ""
            message = f"Added item **{done['item_id']}**{also}; searchable within seconds."
        return message, _status(manager), _table(manager)

    @toast_errors(len(EDITABLE) + 1)
    def pick(rows, proof_value, event: gr.SelectData, request: gr.Request):
        _manager(services, request, proof_value)
        row = event.row_value
        return (row[0], *(row[COLUMNS.index(name)] for name in EDITABLE))

    @toast_errors(3)
    def save(proof_value, item, wanted_value, category, title, price, url, product_id, request: gr.Request):
        manager = _manager(services, request, proof_value)
        given = {"category": category, "title": title, "price": price, "url": url, "product_id": product_id}
        _changes(lambda: manager.update(item, given, who(request, "page")))
        return f"Saved item **{item}**.", _status(manager), _table(manager, wanted_value)

    @toast_errors(3)
    def remove(proof_value, item, wanted_value, request: gr.Request):
        manager = _manager(services, request, proof_value)
        _changes(lambda: manager.remove(item, who(request, "page")))
        return f"Removed item **{item}**.", _status(manager), _table(manager, wanted_value)

    @toast_errors(1)
    def filtered(proof_value, wanted_value, request: gr.Request):
        return _table(_manager(services, request, proof_value), wanted_value)

    private = {"api_visibility": "private"}
    proof.change(reveal, [proof], [tab, status, table], **private)
    add_btn.click(add, [photo, proof, confirm, *fields.values()], [note, status, table], preprocess=False,
                  **private)
    table.select(pick, [table, proof], [item_id, *edits.values()], **private)
    save_btn.click(save, [proof, item_id, wanted, *edits.values()], [edit_note, status, table], **private)
    remove_btn.click(remove, [proof, item_id, wanted], [edit_note, status, table], **private)
    wanted.submit(filtered, [proof, wanted], table, **private)
