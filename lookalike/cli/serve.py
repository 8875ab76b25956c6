"""`serve` sub-command of `lookalike`: the web app, with the same options as the root `app.py`."""

from __future__ import annotations

import argparse

from lookalike.app.server import DESCRIPTION, add_options


def run_serve(args: argparse.Namespace) -> int:
    from lookalike.app.server import serve

    serve(args)
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="start the web app (needs the app extra: pip install lookalike[app])", description=DESCRIPTION
    )
    add_options(parser).set_defaults(func=run_serve)
