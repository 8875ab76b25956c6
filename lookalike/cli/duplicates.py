"""`lookalike duplicates INDEX`: the near-duplicate photos of a catalog (the same picture again, resized,
recompressed or cropped), as groups, for a shop to clean its catalog (lookalike/products/duplicates.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lookalike.cli.common import print_result


def run_duplicates(args: argparse.Namespace) -> int:
    from lookalike.products.duplicates import index_duplicates

    found = index_duplicates(args.index)
    lines = [f"{len(found)} groups of near-duplicate photos ({sum(len(group) for group in found)} photos)"]
    for number, group in enumerate(found, start=1):
        lines += [f"{number:3d}. " + "  ".join(f"[{row['id']}] {row['path']}" for row in group)]
    print_result({"groups": found}, args.json, "\n".join(lines))
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser("duplicates", help="list groups of near-duplicate photos in an index's catalog")
    command.add_argument("index", type=Path, help="index folder")
    command.add_argument("--json", action="store_true")
    command.set_defaults(func=run_duplicates)
