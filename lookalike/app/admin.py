"""Who may change data from the app: the admin, recognised by one token (`--admin-token` or
`LOOKALIKE_ADMIN_TOKEN`); everyone else (visitors, with or without `--auth`) only reads.

An API client sends `Authorization: Bearer TOKEN`; the page asks for the token once and keeps the
session's proof in server-side state (`gr.State`), never in the browser. The token is compared in constant
time (`hmac.compare_digest`) and never logged, shown or written anywhere: `repr` hides it.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

import gradio as gr

#: The environment variable the token may come from (the flag wins).
TOKEN_VARIABLE = "LOOKALIKE_ADMIN_TOKEN"
#: Shortest token accepted: a guessable token on a public demo is no protection.
MIN_TOKEN_LENGTH = 12


class NotAdminError(gr.Error):
    """A change asked for without the admin's token: refused before anything is read or written."""


class Admin:
    """The admin's token, or none (management off: the app is read-only)."""

    def __init__(self, token: str | None) -> None:
        token = (token or "").strip() or None
        if token is not None and len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the admin token must have at least {MIN_TOKEN_LENGTH} characters")
        self._token = token.encode() if token else None

    @classmethod
    def from_options(cls, token: str | None) -> Admin:
        """The flag's token, else the environment's, else management off."""
        return cls(token or os.environ.get(TOKEN_VARIABLE))

    def __repr__(self) -> str:  # never the token
        return f"Admin(enabled={self.enabled})"

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def accepts(self, token: str | None) -> bool:
        """Whether `token` is the admin's, in time independent of where it first differs."""
        if self._token is None or not token:
            return False
        return hmac.compare_digest(token.strip().encode(), self._token)

    def bearer(self, request: gr.Request | None) -> str | None:
        """The token an API call carries in `Authorization: Bearer ...`, if any."""
        headers: Any = getattr(request, "headers", None) or {}
        value = headers.get("authorization") or headers.get("Authorization") or ""
        scheme, _, token = str(value).partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def require(self, request: gr.Request | None = None, session: str | None = None) -> None:
        """Raise NotAdminError unless the call is the admin's: its Bearer header, or the page session's
        token (the `gr.State` the Manage tab's login filled)."""
        if not self.enabled:
            raise NotAdminError("Management is off on this server (start it with --admin-token).")
        if not (self.accepts(self.bearer(request)) or self.accepts(session)):
            raise NotAdminError("Only the admin may change data: send 'Authorization: Bearer <admin token>' "
                                "or sign in on the Manage tab.")
