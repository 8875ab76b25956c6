"""What every sub-command module shares: the error a user can fix, and the --json/text printer.

Kept apart from `main` so the sub-command modules that `main` imports never import `main` back."""

from __future__ import annotations

import json
from typing import Any


class UserError(Exception):
    """A failure the user can fix (bad path, bad image, missing index): printed in one line, exit 2."""


def print_result(payload: dict[str, Any], as_json: bool, text: str) -> None:
    """Print machine-readable JSON with --json, else the human-readable `text`."""
    print(json.dumps(payload, indent=2, default=str) if as_json else text)
