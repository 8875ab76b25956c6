"""What users send: a photo read once from Gradio's upload cache or a data: URI, never kept; and the
errors a user can fix turned into specific messages instead of stack traces."""

from __future__ import annotations

import base64
import functools
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr

from lookalike.app.services import IndexNotReadyError
from lookalike.images.loading import ImageError, load_image
from lookalike.vectors.live import IndexUnavailableError

log = logging.getLogger("lookalike.app")
UPLOAD_SOURCES = ["upload", "webcam", "clipboard"]
#: Seconds an upload may stay in Gradio's cache before it is purged. Uploads are stored by content hash
#: and shared by every request that sends the same photo, so they are purged by age, never per request.
UPLOAD_TTL_S = int(os.environ.get("LOOKALIKE_UPLOAD_TTL", 120))


def read_upload(payload: Any, what: str):
    """The image a user sent, decoded by our own loader so bad files get our specific messages, which
    name the photo as the user knows it (`what`), never the server's temporary copy."""
    return load_image(upload_source(payload, what), name=what)


def upload_source(payload: Any, what: str) -> bytes | Path:
    """What a user sent, undecoded: a data: URI's bytes, or the path of a file in Gradio's upload cache (a
    photo kept as sent, as the Manage tab's catalog does)."""
    if isinstance(payload, dict) and "background" in payload:  # image editor: the cropped composite wins
        payload = payload.get("composite") or payload.get("background")
    if not payload:
        raise gr.Error(f"Add {what} first (upload, webcam or paste).")
    if isinstance(payload, str):  # the JSON API: a data: URI, or the path of a file uploaded to this server
        payload = {"url": payload} if payload.startswith("data:") else {"path": payload}
    url = str(payload.get("url") or "")
    if not payload.get("path") and url.startswith("data:"):
        try:
            return base64.b64decode(url.split(",", 1)[1], validate=True)
        except (IndexError, ValueError):
            raise ImageError(f"{what} is not valid base64 data") from None
    path = Path(str(payload.get("path") or ""))
    if not _is_upload(path):
        raise ImageError(f"{what} must be uploaded to this server first (or sent as a data: URI)")
    if not path.exists():
        raise gr.Error(f"{what.capitalize()} was purged (uploads are kept {UPLOAD_TTL_S} s): add it again.")
    return path


def _is_upload(path: Path) -> bool:
    """Only files in Gradio's upload cache are read: a client must not make the server open its own files."""
    root = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()
    return path.resolve().is_relative_to(root)


@contextmanager
def user_errors() -> Iterator[None]:
    """Show a specific message for anything the user can fix; never a stack trace."""
    try:
        yield
    except gr.Error:
        raise
    except (ImageError, ValueError, FileNotFoundError, IndexNotReadyError, IndexUnavailableError) as exc:
        raise gr.Error(str(exc)) from None
    except Exception as exc:
        log.exception("request failed")
        raise gr.Error(f"Internal error ({type(exc).__name__}); the app is still running, please try again.") from None


def toast_errors(outputs: int) -> Callable[[Callable], Callable]:
    """For the page's handlers: a failure shows one message (a toast) and leaves every panel as it was,
    instead of an error badge on each output. The JSON API keeps raising, so a client gets the error."""

    def wrap(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def run(*args, **kwargs):
            try:
                with user_errors():
                    return handler(*args, **kwargs)
            except gr.Error as exc:
                gr.Warning(exc.message, title="Could not do that")
                return gr.skip() if outputs == 1 else tuple(gr.skip() for _ in range(outputs))

        return run

    return wrap
