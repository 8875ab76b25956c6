"""The in-catalog decision, category top-1 and the known queries' calibration with the query embedded with vs
without its mirror image, on one index in one run (the build-time fits see mirror-averaged catalog vectors).

    python bench/query_mirror_check.py IDX   # e.g. the default demo index; writes bench/out/query_mirror_check.json
"""

import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from bench.open_set_demo import queries  # noqa: E402
from lookalike.evaluation.open_set import (  # noqa: E402
    expected_calibration_error,
    open_set_quality,
    searched,
)
from lookalike.evaluation.products import quality  # noqa: E402
from lookalike.products.embedding import embed_catalog  # noqa: E402
from lookalike.products.search import ProductSearcher  # noqa: E402

index = sys.argv[1]
s = ProductSearcher.load(index)
known_items, unknown_items = queries("test", 300)
out = {}
for name, emb in (("mirror", s.embedder), ("no_mirror", s.embedder.for_queries())):
    if name == "no_mirror":
        assert emb.flip is False
    k = embed_catalog(known_items, emb, show_bar=False)
    u = embed_catalog(unknown_items, emb, show_bar=False)
    o = open_set_quality(s, (k.items, k.vectors, None), (u.items, u.vectors, None), 30, "all")
    q = quality(s, k.items, k.vectors, 30, "category")
    hits = np.concatenate(searched(s, k.items, k.vectors, 30, "all", None)[3])
    out[name] = {"open_set": o, "top1": q["top1_accuracy"], "p10": q["precision_at_10"],
                 "ece_known": expected_calibration_error(hits[:, 0], hits[:, 1])}
    print(name, json.dumps(out[name], default=float)[:900], flush=True)
(REPO_ROOT / "bench" / "out").mkdir(exist_ok=True)
(REPO_ROOT / "bench" / "out" / "query_mirror_check.json").write_text(json.dumps(out, default=float, indent=1))
