"""Start the app: the options that `lookalike serve` and the root `app.py` share, and the launch.

Importing this module loads no Gradio or torch (`lookalike --help` builds its parser); `serve` does.
With no `--index`, `--catalog` or their variables the app serves the bundled demo catalog (`demo`), so a
hosted demo works with no set-up; a catalog given alone is indexed into `./index`.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

DESCRIPTION = "lookalike's web app: product search and face verification in one Gradio Blocks page."


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The app's options, each defaulting to its environment variable. Numbers are converted when the
    app's own parser runs, so a bad GRADIO_SERVER_PORT never breaks another `lookalike` command."""
    parser.add_argument("--index", type=Path, default=os.environ.get("LOOKALIKE_INDEX"),
                        help="product index folder (LOOKALIKE_INDEX); with neither this nor --catalog, the bundled "
                        "demo catalog, indexed into the cache folder at the first start")
    parser.add_argument("--catalog", default=os.environ.get("LOOKALIKE_CATALOG"),
                        help="catalog folder (or manifest CSV) to index in the background when the index is missing "
                        "(LOOKALIKE_CATALOG; into --index, default ./index)")
    parser.add_argument("--faces-index", type=Path, default=os.environ.get("LOOKALIKE_FACES_INDEX"),
                        help="face gallery (`lookalike build-faces`) the Find a person tab searches "
                        "(LOOKALIKE_FACES_INDEX), or a people index; without one, visitors make a gallery for their "
                        "session")
    parser.add_argument("--people-index", type=Path, default=os.environ.get("LOOKALIKE_PEOPLE_INDEX"),
                        help="people index (`lookalike cluster-faces`) the People tab shows (LOOKALIKE_PEOPLE_INDEX); "
                        "its named people are also the Find a person tab's gallery when --faces-index is not given")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=os.environ.get("GRADIO_SERVER_PORT", "7860"))
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--auth", help="USER:PASS required to open the app")
    parser.add_argument("--admin-token", default=None,
                        help="turn management on: the token the admin signs in with, or sends as 'Authorization: "
                        "Bearer TOKEN' (else LOOKALIKE_ADMIN_TOKEN; neither: the app is read-only)")
    parser.add_argument("--max-file-size", default="10mb", help="largest upload accepted, e.g. 10mb")
    parser.add_argument("--concurrency", type=int, default=os.environ.get("LOOKALIKE_CONCURRENCY", "2"),
                        help="requests processed at once (LOOKALIKE_CONCURRENCY)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return add_options(argparse.ArgumentParser(description=DESCRIPTION)).parse_args(argv)


def serve(args: argparse.Namespace) -> None:
    """Load the models and the index, then serve the page until stopped."""
    from lookalike.app.layout import build_demo
    from lookalike.app.services import load_services, product_index_dir
    from lookalike.products.parts.thumbnails import FOLDER as THUMBNAILS

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from lookalike.app.admin import Admin
    from lookalike.app.manage import CatalogManager, open_managed_catalog

    admin = Admin.from_options(args.admin_token)  # a bad token stops the start, before any model loads
    managed = open_managed_catalog(admin, args.catalog)  # the admin's catalog folder, recovered; None: read-only
    catalog = str(managed.manifest) if managed else args.catalog  # a managed catalog is built from its manifest
    services = load_services(args.index, catalog, args.faces_index, args.people_index)
    services.admin = admin
    if managed is not None:
        services.manager = CatalogManager(managed, services.products)  # brings a lagging index up to date
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    demo = build_demo(services)
    served = product_index_dir(args.index, args.catalog)
    demo.queue(default_concurrency_limit=args.concurrency).launch(
        prevent_thread_lock=True,  # returns once the page answers: a deferred face model loads then
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        auth=auth,
        max_file_size=args.max_file_size,
        allowed_paths=[str(served / THUMBNAILS)],  # the gallery's thumbnails; nothing else of the index
        show_error=True,
    )
    if services.faces_deferred:
        services.load_faces_later()
    demo.block_thread()


def main(argv: list[str] | None = None) -> None:
    serve(parse_args(argv))
