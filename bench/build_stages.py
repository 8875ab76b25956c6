"""Where a default build's time goes: `lookalike build` run as the CLI runs it, each stage's function timed.

The stages are the build's own functions, wrapped (nothing else changes): the plan, the frozen pass of the
tuning, the training epochs, the tuned tail's catalog vectors, the category head, the keypoints; the rest of
the total is imports, Annoy and writing. Prints one JSON line of seconds, with the load average at the end
(read shares, not seconds, on a shared machine; docs/experiments/start-and-build-speed.md).

    LOOKALIKE_CACHE=$(mktemp -d) python bench/build_stages.py ../shared/data/products \
        --manifest ../shared/data/products_manifest.csv --out idx
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SPENT: dict[str, float] = {}


def timed(module: ModuleType, name: str, label: str) -> None:
    """Replace `module.name` by itself, timed into SPENT[label] (callers look it up in `module` when called)."""
    function: Callable = getattr(module, name)

    def run(*args, **kwargs):
        begun = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT[label] = SPENT.get(label, 0.0) + time.perf_counter() - begun

    setattr(module, name, run)


def main() -> int:
    begun = time.perf_counter()
    import lookalike.products.backbone_tuning as backbone_tuning
    import lookalike.products.build as build
    import lookalike.products.parts.keypoints as keypoints
    import lookalike.products.tuning as tuning
    from lookalike.cli.main import main as cli

    for module, name, label in ((build, "resolve", "plan"), (tuning, "frozen_catalog", "frozen_pass"),
                                (backbone_tuning, "train_tail", "training"),
                                (backbone_tuning, "tail_vectors", "tail_vectors"), (build, "_fit_head", "head"),
                                (keypoints, "write_local_features", "keypoints")):
        timed(module, name, label)
    SPENT["imports"] = time.perf_counter() - begun
    code = cli(["build", *sys.argv[1:]])
    SPENT["total"] = time.perf_counter() - begun
    print(json.dumps({**{k: round(v, 1) for k, v in SPENT.items()}, "load1": round(os.getloadavg()[0], 1)}))
    return code


if __name__ == "__main__":
    sys.exit(main())
