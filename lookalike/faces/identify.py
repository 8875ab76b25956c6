"""`lookalike.identify`: who is in a photo, against a face gallery index folder, in one call, for scripts and
long-running processes alike.

Each resolved index path gets one `LiveGallery` (kept in an `Instances`), made on the first call: it loads
the gallery, then follows the folder, so after `lookalike build-faces --update` swaps a new gallery in,
later calls answer from it within `lookalike.vectors.live.DEFAULT_INTERVAL` seconds plus its load time.
Every call leases the gallery current when it began; a replaced one is closed after its last call. The face
model is loaded once per model (`gallery.Gallery.pipeline`), not per gallery.

A first call that cannot load the gallery raises the loading error itself (FileNotFoundError, GalleryError)
and keeps nothing, so the next call tries again.

The 1:N vocabulary (`Gallery`, the result types, the open-set decision) lives in `lookalike.faces.gallery`.
"""

from __future__ import annotations

from pathlib import Path

from lookalike.faces.gallery import DEFAULT_TOP_K, IdentifyResult
from lookalike.faces.live import LiveGallery
from lookalike.images.loading import ImageSource
from lookalike.instances import Instances

__all__ = ["identify"]


def _open(path: Path) -> LiveGallery:
    """The live gallery of the index at `path`; raises what loading it raised when nothing could be loaded."""
    return LiveGallery(path).loaded_or_raise()


_LIVE: Instances[Path, LiveGallery] = Instances(_open)


def identify(
    photo: ImageSource,
    index: str | Path,
    top_k: int = DEFAULT_TOP_K,
    threshold: float | None = None,
) -> IdentifyResult:
    """Who is in a photo? Every face, against a gallery index built by `lookalike build-faces`, in one call.

    The gallery and its face model are loaded on first use and kept for later calls in this process; the
    folder is then followed, so a gallery that `lookalike build-faces --update` swapped in is answered from
    within seconds (a server keeps its own `LiveGallery(index)`; a session's uploads go in a
    `MemoryGallery`, which answers the same `identify`).

    Args:
        photo: a path, PIL image, numpy array or bytes; any mode, EXIF rotation applied.
        index: the gallery index folder.
        top_k: how many gallery people to list per face, nearest first (each by their closest face).
        threshold: a face is named when its nearest person is at or below this distance, else "unknown";
            default: the model's calibrated identification threshold (`open_set_threshold`), stricter than
            its 1:1 one because a stranger's nearest face is the closest of the whole gallery (docs/faces.md);
            `lookalike eval-identify` measures the one that holds a given gallery's false accepts to 1%.

    Returns:
        An `IdentifyResult`: for every face of the photo (largest first) its box, its `top_k` matches
        (person, distance, cosine similarity, the gallery photo and box) and its decision, plus the model,
        threshold, gallery size and per-stage timings.

    Raises:
        ImageError: the photo cannot be read (not an image, truncated, too large).
        NoFaceError: no face was found in the photo.
        FileNotFoundError, GalleryError: no gallery index at `index`, or a damaged one.
        ValueError: top_k below 1, or a model without a calibrated threshold and none given.
        WeightsUnavailableError: the gallery's face model cannot be loaded here.

    Example:
        >>> import lookalike
        >>> result = lookalike.identify("party.jpg", index="face_index")
        >>> [(face.decision, face.matches[0].distance) for face in result.faces]
        [('Colin_Powell', 0.412), ('unknown', 0.934)]
    """
    with _LIVE.get(Path(index).resolve()).gallery() as gallery:
        return gallery.identify(photo, top_k, threshold)
