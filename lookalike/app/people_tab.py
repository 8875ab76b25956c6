"""The People tab (`--people-index DIR`, made by `lookalike cluster-faces`): every person of a photo collection
as a face thumbnail, the largest first; a click shows that person's faces and photos. Visitors only read.

Corrections (name, merge, move a face, split, not this person) are the admin's: their controls render only when
management is on (`--admin-token`), and each one is refused, changing nothing, unless the session signed in
on the page's one admin sign-in (`sign_in.py`; its proof kept in server-side `gr.State`) or the call carries it
as a Bearer header (`services.admin.require`). A correction is written at once (`People`), and the page
reloads the index.

Pictures are made here from the index's photos (face crops at 96 px, photos at 256 px): no file path of the
collection is served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from lookalike.app.services import Services
from lookalike.app.uploads import user_errors
from lookalike.faces.people_index import People, PeopleError
from lookalike.images.loading import load_image
from lookalike.vectors.index_folder import IndexLockedError

SHOWN_PEOPLE = 120  # people in the overview (the largest); the JSON and the CLI list them all
SHOWN_FACES = 48  # faces and photos of one person shown on click
FACE_PX, PHOTO_PX = 96, 256


def face_thumbnail(people: People, row: dict, size: int = FACE_PX) -> Image.Image | None:
    """The face of `row` cut from its photo with a little margin, `size` px on its longer side."""
    try:
        photo = load_image(people.photo_path(row), name="a collection photo")
    except (OSError, ValueError):
        return None
    x1, y1, x2, y2 = row["box"]
    pad = 0.15 * max(x2 - x1, y2 - y1)
    crop = photo.crop((int(max(0, x1 - pad)), int(max(0, y1 - pad)), int(x2 + pad), int(y2 + pad)))
    crop.thumbnail((size, size))
    return crop


def _label(person: dict) -> str:
    return f"{person['name'] or 'Person ' + str(person['id'])} · {len(person['faces'])} face(s)"


def overview(folder: Path) -> tuple[list[tuple[Image.Image, str]], list[int], str]:
    """(a thumbnail per person, largest first; their ids in that order; a summary line)."""
    people = People(folder)
    try:
        listing = people.to_dict()
        pictures, ids = [], []
        for person in listing["people"][:SHOWN_PEOPLE]:
            row = people.find_face(person["faces"][0]["photo"], person["faces"][0]["face"])
            if (picture := face_thumbnail(people, row)) is not None:
                pictures.append((picture, _label(person)))
                ids.append(person["id"])
        named = sum(p["name"] is not None for p in listing["people"])
        note = (f"{len(listing['people'])} people ({named} named) and {len(listing['unsure'])} unsure faces in "
                f"{people.manifest.photos} photos" + (f"; the {SHOWN_PEOPLE} largest shown"
                                                     if len(listing["people"]) > SHOWN_PEOPLE else ""))
        return pictures, ids, note
    finally:
        people.close()


def person_view(folder: Path, person: int) -> tuple[list[tuple[Image.Image, str]], list[tuple[Image.Image, str]], str]:
    """(its faces captioned PHOTO#N, which the corrections take; its photos; a heading)."""
    people = People(folder)
    try:
        rows = sorted(people.faces_of(person), key=lambda r: (r["photo"], r["face"]))[:SHOWN_FACES]
        faces = [(p, f"{r['photo']}#{r['face']}") for r in rows if (p := face_thumbnail(people, r)) is not None]
        photos = []
        for photo in dict.fromkeys(r["photo"] for r in rows):
            try:
                image = load_image(people.root / photo, name="a collection photo")
            except (OSError, ValueError):
                continue
            image.thumbnail((PHOTO_PX, PHOTO_PX))
            photos.append((image, photo))
        name = people.names().get(person) or f"Person {person}"
        return faces, photos, f"**{name}** (id {person}): {len(people.faces_of(person))} faces"
    finally:
        people.close()


def _face(text: str) -> tuple[str, int]:
    photo, _, number = (text or "").strip().rpartition("#")
    if not photo or not number.isdigit():
        raise gr.Error(f"Give a face as PHOTO#N, as its caption shows (not {text!r}).")
    return photo, int(number)


def _number(text: Any, what: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise gr.Error(f"{what} is a person's id (a number), not {text!r}.") from None


def make_corrections(services: Services, folder: Path):
    """The correction handler: (action, a, b, c, session token, request) -> a message; the admin's only."""

    def correct(action: str, first: str, second: str, request: gr.Request | None = None,
                session: str | None = None) -> str:
        services.admin.require(request, session)  # before anything is read or written
        with user_errors():
            people = People(folder)
            try:
                if action == "name":
                    people.name(_number(first, "The person"), second)
                    return f"Person {first} is now named {second.strip() or '(unnamed)'}."
                if action == "merge":
                    people.merge(_number(first, "The person"), _number(second, "The person merged into"))
                    return f"Person {first} was merged into person {second}."
                if action == "move":
                    to = None if second.strip().lower() in ("", "new") else _number(second, "The person")
                    return f"The face is now in person {people.move(*_face(first), to)}."
                if action == "split":
                    faces = [_face(f) for f in second.replace(",", " ").split()]
                    return f"Split off as person {people.split(_number(first, 'The person'), faces)}."
                if action == "not":
                    new = people.not_person(*_face(second), _number(first, "The person"))
                    return f"The face left person {first} for good; it is now person {new}."
            except (PeopleError, IndexLockedError) as exc:
                raise gr.Error(str(exc)) from None
            finally:
                people.close()
        raise gr.Error(f"Unknown correction {action!r}.")

    return correct


def people_tab(services: Services, proof: gr.State) -> None:
    """The People tab, when the server has a people index (`--people-index`); nothing otherwise."""
    if services.people is None:
        return
    folder = Path(services.people.path)
    correct = make_corrections(services, folder)
    with gr.Tab("People") as tab:
        note = gr.Markdown(elem_id="people-note")
        ids = gr.State([])
        everyone = gr.Gallery(label="People, largest first (click one)", columns=8, height=360, object_fit="contain",
                              allow_preview=False, elem_id="people-gallery")
        heading = gr.Markdown()
        with gr.Row():
            faces = gr.Gallery(label="Their faces (PHOTO#N)", columns=8, height=220, allow_preview=False,
                               object_fit="contain", elem_id="person-faces")
            photos = gr.Gallery(label="Their photos", columns=4, height=220, elem_id="person-photos")

        def show_all():
            with user_errors():
                return overview(folder)

        def show_person(order: list[int], event: gr.SelectData):
            return person_view(folder, order[event.index])

        everyone.select(show_person, [ids], [faces, photos, heading], api_visibility="private")
        refresh = gr.Button("Reload", variant="secondary")
        refresh.click(show_all, None, [everyone, ids, note], api_visibility="private")
        tab.select(show_all, None, [everyone, ids, note], api_visibility="private")
        if services.admin.enabled:
            _admin_controls(services, proof, correct, show_all, [everyone, ids, note])


def _admin_controls(services: Services, proof: gr.State, correct, show_all, outputs: list) -> None:
    """The corrections, hidden until the session's `proof` (the page's admin sign-in) is the admin's."""
    with gr.Column(visible=False) as controls:
        gr.Markdown("### Corrections (admin)")
        action = gr.Radio(["name", "merge", "move", "split", "not"], value="name", label="Correction",
                          info="name: PERSON NAME · merge: PERSON INTO · move: PHOTO#N PERSON|new · "
                               "split: PERSON 'PHOTO#N PHOTO#N…' · not: PERSON PHOTO#N (never this person)")
        with gr.Row():
            first = gr.Textbox(label="First (person id, or PHOTO#N for move)")
            second = gr.Textbox(label="Second (name, person id, or faces)")
        apply = gr.Button("Apply", variant="primary")
        result = gr.Markdown()

    def reveal(given: str | None):
        return gr.update(visible=services.admin.accepts(given))

    proof.change(reveal, [proof], [controls], api_visibility="private")

    def run(kind: str, a: str, b: str, session: str | None, request: gr.Request):
        message = correct(kind, a, b, request, session)
        return (message, *show_all())

    apply.click(run, [action, first, second, proof], [result, *outputs], api_visibility="private")
