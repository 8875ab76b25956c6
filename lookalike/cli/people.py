"""People sub-commands of `lookalike`: `cluster-faces` (a photo collection -> a people index) and `people`
(list it, and correct it: name, merge, move, split, not-this-person)."""

from __future__ import annotations

import argparse

from lookalike.cli.common import UserError, print_result


def _face(text: str) -> tuple[str, int]:
    """PHOTO#FACE, as `people --json` lists them (the photo relative to the photos' root, the face number)."""
    photo, _, number = text.rpartition("#")
    if not photo or not number.isdigit():
        raise UserError(f"a face is PHOTO#NUMBER (as listed by lookalike people --json), not {text!r}")
    return photo, int(number)


def run_cluster_faces(args: argparse.Namespace) -> int:
    from lookalike.faces.people_build import cluster_faces

    report = cluster_faces(args.photos, args.out, update=args.update, model=args.model, threshold=args.threshold,
                           store=args.store, quiet=args.json)
    lines = [f"{report['faces']} faces of {report['photos']} photos: {report['people']} people, "
             f"{report['unsure']} unsure, into {args.out} ({report['build_seconds']:.1f} s, "
             f"{report['photos_embedded']} photos embedded)"]
    if update := report.get("update"):
        lines.append(f"{'re-clustered' if update['reclustered'] else 'update'}: {update['kept_faces']} faces kept, "
                     f"{update['added_faces']} added, {update['removed_faces']} removed; "
                     f"{update['people_kept']} people kept, {update['people_new']} new")
    for key, what, reason in (("photos_without_face", "photo(s) without a face", "reason"),
                              ("unreadable", "unreadable file(s)", "error")):
        if rows := report[key]:
            lines.append(f"warning: {len(rows)} {what}: " + "; ".join(f"{r['path']} ({r[reason]})" for r in rows[:10])
                         + (f", and {len(rows) - 10} more" if len(rows) > 10 else ""))
    print_result(report, args.json, "\n".join(lines))
    return 0


def run_people(args: argparse.Namespace) -> int:
    from lookalike.faces.people_index import People

    people = People(args.index)
    try:
        action = args.action
        if action == "name":
            people.name(args.person, args.name)
        elif action == "merge":
            people.merge(args.person, args.into)
        elif action == "move":
            people.move(*_face(args.face), None if args.to == "new" else int(args.to))
        elif action == "split":
            people.split(args.person, [_face(f) for f in args.faces])
        elif action == "not":
            people.not_person(*_face(args.face), args.person)
        if action:
            people = People(args.index)
        listing = people.to_dict()
    finally:
        people.close()
    lines = [f"{p['id']}: {p['name'] or '(unnamed)'}, {len(p['faces'])} face(s)" for p in listing["people"]]
    lines.append(f"{len(listing['unsure'])} unsure face(s)")
    print_result(listing, args.json, "\n".join(lines))
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    build = subparsers.add_parser("cluster-faces", help="group the faces of a photo collection into people")
    build.add_argument("photos", help="a folder tree of photos, or a CSV of paths (no labels)")
    build.add_argument("--out", required=True, help="the people index folder (replaced atomically)")
    build.add_argument("--update", action="store_true",
                       help="add new photos' faces to the people there and drop removed photos'; without it an "
                            "index there is re-clustered (corrections, ids and names kept either way)")
    build.add_argument("--threshold", type=float, help="mean cosine at which faces merge (default: 0.32, from LFW)")
    build.add_argument("--model", help="face model (default: arcface_mobilefacenet; an index keeps its own)")
    build.add_argument("--store", help="vector store: annoy (default), milvus, milvus:///path.db, milvus://host:port")
    build.add_argument("--json", action="store_true", help="print the report as JSON")
    build.set_defaults(func=run_cluster_faces)

    people = subparsers.add_parser("people", help="list a people index, or correct it")
    people.add_argument("--index", required=True, help="the people index folder (cluster-faces)")
    people.add_argument("--json", action="store_true", help="print the people as JSON")
    people.set_defaults(func=run_people, action=None)
    actions = people.add_subparsers(dest="action")
    name = actions.add_parser("name", help="name a person (an empty name unnames)")
    name.add_argument("person", type=int)
    name.add_argument("name")
    merge = actions.add_parser("merge", help="merge PERSON into INTO (which keeps its id)")
    merge.add_argument("person", type=int)
    merge.add_argument("into", type=int)
    move = actions.add_parser("move", help="move a face (PHOTO#N) to a person, or to a new one ('new')")
    move.add_argument("face")
    move.add_argument("to")
    split = actions.add_parser("split", help="split the given faces (PHOTO#N ...) of a person off into a new one")
    split.add_argument("person", type=int)
    split.add_argument("faces", nargs="+")
    refuse = actions.add_parser("not", help="not this person: the face (PHOTO#N) leaves PERSON and never rejoins")
    refuse.add_argument("face")
    refuse.add_argument("person", type=int)
    for sub in (name, merge, move, split, refuse):
        sub.add_argument("--json", action="store_true", help="print the people as JSON")
