"""`python -m lookalike COMMAND`: one entry point; each engine module adds its own sub-commands."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

# Each module defines `add_commands(subparsers)`, setting `func(args) -> int` on its parsers.
COMMAND_MODULES = ("lookalike.product_cli", "lookalike.face_cli", "lookalike.train_cli")


class UserError(Exception):
    """A failure the user can fix (bad path, bad image, missing index): printed in one line, exit 2."""


def print_result(payload: dict[str, Any], as_json: bool, text: str) -> None:
    """Print machine-readable JSON with --json, else the human-readable `text`."""
    print(json.dumps(payload, indent=2, default=str) if as_json else text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lookalike", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
