"""Turn anything a user can hand us (path, bytes, PIL image, numpy array) into a clean RGB image.

Every model in the project reads images through `load_image`, so odd inputs are handled once:
EXIF rotation, CMYK, 16-bit, palette and alpha modes are normalised, and unreadable input fails
with an `ImageError` that says what was wrong instead of a stack trace from deep inside PIL.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray

#: Largest image accepted, in pixels (about a 60-megapixel photo). Larger ones are refused before
#: decoding: a "decompression bomb" of a few KB could otherwise claim gigabytes of memory.
MAX_PIXELS = 64_000_000

# Never decode a truncated file silently into half a grey image: we want the error.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(ValueError):
    """An input that is not a usable image; the message says why, in words a user can act on."""


def _name(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"'{os.fspath(source)}'"
    return "the image"


def _open(source: ImageSource, name: str) -> Image.Image:
    """Open without decoding, so the size check happens before any pixel memory is taken."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{name} does not exist or is not a file")
        if path.stat().st_size == 0:
            raise ImageError(f"{name} is empty (0 bytes)")
        fp: io.BufferedIOBase = io.BytesIO(path.read_bytes())
    else:
        if len(source) == 0:
            raise ImageError(f"{name} is empty (0 bytes)")
        fp = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(fp)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name} is too large to process safely ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image file (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as exc:  # a recognised header cut short or malformed
        raise ImageError(f"{name} is damaged or truncated and cannot be decoded ({exc})") from None


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageError(f"an image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    if array.size == 0:
        raise ImageError("the image array is empty")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating):
            scale = 255.0 if float(np.nanmax(array)) <= 1.0 else 1.0
        else:
            scale = 255.0 / max(float(np.iinfo(array.dtype).max), 1.0)
        array = np.clip(np.nan_to_num(array.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Normalise any PIL mode to 8-bit RGB; transparent areas become white, as on a shop page."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array * (255.0 / top), 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def load_image(
    source: ImageSource, max_pixels: int = MAX_PIXELS, draft: int | None = None, name: str | None = None
) -> Image.Image:
    """Return `source` as an upright 8-bit RGB PIL image, or raise `ImageError` saying why not.

    `draft`: a JPEG file at least twice this on both sides is decoded at a reduced scale (1/2, 1/4,
    1/8) that keeps both sides at least `draft`; decoding a 12 MP photo then costs a fraction, for a model
    that only sees a few hundred pixels. The upright full size stays in `image.info["full_size"]`.
    `name` is how messages call the photo (a server says "the query photo", never its own temporary
    path); by default its path, quoted."""
    name = name or _name(source)
    if isinstance(source, np.ndarray):
        image = _from_array(source)
    elif isinstance(source, Image.Image):
        image = source
    elif isinstance(source, (str, os.PathLike, bytes, bytearray)):
        image = _open(bytes(source) if isinstance(source, bytearray) else source, name)
    else:
        raise ImageError(f"cannot read an image from a {type(source).__name__}")
    width, height = image.size
    if width == 0 or height == 0:
        raise ImageError(f"{name} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            f"{name} is too large: {width}x{height} = {width * height / 1e6:.0f} MP "
            f"(limit {max_pixels / 1e6:.0f} MP); resize it first"
        )
    try:
        if draft is not None and image.format == "JPEG" and min(width, height) >= 2 * draft:
            image.draft(None, (draft, draft))
        image.load()
        stored = image.size
        image = ImageOps.exif_transpose(image)
        full_size = (height, width) if image.size != stored else (width, height)
        image = _to_rgb(image)
        image.info["full_size"] = full_size
        return image
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name} is damaged or truncated and cannot be decoded ({exc})") from None
