"""lookalike: find products that look like a photo, and tell whether two faces are the same person.

    >>> import lookalike
    >>> lookalike.build_index("shop_photos/", "index")      # once, ahead of time
    >>> lookalike.search("query.jpg", index="index").results[0].path
    >>> lookalike.verify("face1.jpg", "face2.jpg").same_person

Names load on first use, so `import lookalike` (and the `lookalike` command's help) costs no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # product search
    "search": "lookalike.products.one_call",
    "ProductSearcher": "lookalike.products.search",
    "SearchResult": "lookalike.products.results",
    "Hit": "lookalike.products.results",
    "build_index": "lookalike.products.build",
    "BuildOptions": "lookalike.products.build",
    "IndexMissingError": "lookalike.products.index",
    "IndexCorruptError": "lookalike.products.index",
    # face verification
    "verify": "lookalike.faces.verify",
    "FaceVerifier": "lookalike.faces.verify",
    "VerifyResult": "lookalike.faces.verify",
    "FaceInfo": "lookalike.faces.verify",
    "NoFaceError": "lookalike.faces.pipeline",
    # face identification (1:N)
    "identify": "lookalike.faces.identify",
    "IdentifyResult": "lookalike.faces.gallery",
    "IdentifiedFace": "lookalike.faces.gallery",
    "GalleryMatch": "lookalike.faces.gallery",
    "FaceGallery": "lookalike.faces.gallery_index",
    "GalleryError": "lookalike.faces.gallery_index",
    "MemoryGallery": "lookalike.faces.memory_gallery",
    "build_gallery": "lookalike.faces.gallery_build",
    # people: a photo collection's faces grouped, named and corrected
    "cluster_faces": "lookalike.faces.people_build",
    "People": "lookalike.faces.people_index",
    "PeopleError": "lookalike.faces.people_index",
    # shared
    "load_image": "lookalike.images.loading",
    "ImageError": "lookalike.images.loading",
    "UnknownModelError": "model_zoo.registry",
    "WeightsUnavailableError": "model_zoo.registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lookalike' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
