"""`lookalike COMMAND` (also `python -m lookalike`): one entry point; each engine module adds its own
sub-commands and imports its engine only when one runs, so `lookalike --help` loads no torch."""

from __future__ import annotations

import argparse
import importlib
import sys

from lookalike.cli.common import UserError
from model_zoo.registry import UnknownModelError

# Each module defines `add_commands(subparsers)`, setting `func(args) -> int` on its parsers.
COMMAND_MODULES = ("lookalike.cli.products", "lookalike.cli.duplicates", "lookalike.cli.faces", "lookalike.cli.people",
                   "lookalike.cli.training", "lookalike.cli.serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lookalike",
        description="Visual search: find catalog products that look like a photo, and tell whether two "
        "photos show the same person.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run a parsed command; a failure the user can act on prints one line and exits 2."""
    try:
        return int(args.func(args) or 0)
    except (UserError, UnknownModelError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
