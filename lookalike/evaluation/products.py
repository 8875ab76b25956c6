"""Score a product index with labelled query photos, and time queries end to end (warm).

Quality is scored on every query from its embedding (embedded in batches and cached by file
sha256 + model, like catalog photos, so scoring another scope re-uses them): top1_accuracy (the
head's first category), precision_at_10 (share of the first 10 results in the query's category),
map_at_30, ann_recall_at_30 (the searcher's top-30 against brute force over the same scope), and
with product ids product_recall_at_1 and product_recall_at_10 (the same product among the first 1 or
10 results) over the queries whose product_id is in the index, `product_queries` of them (an id the
catalog lacks cannot be found, so it is not counted).

With re-ranking (`rerank`, by default as search decides: on for an index with local features), each
query's first hits are verified and re-ordered as search does (`lookalike.products.spatial`), its keypoints
extracted from its photo; `rerank=False` scores the plain vector search of the same index. Likewise an index
with printed words reads each query's words (`read_text`, on by default for such an index). An index whose
category head reads a second backbone's view embeds the queries with that backbone too, cached the same way.

Latency is timed on `latency_queries` queries spread evenly over the set, one at a time as a user
sends them: decode -> embed -> head -> Annoy -> exact re-rank, after a few warm-up queries.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from lookalike.evaluation.open_set import open_set_quality
from lookalike.evaluation.retrieval import average_precision_at_k, precision_at_k
from lookalike.images.loading import load_image
from lookalike.products.catalog import CatalogItem
from lookalike.products.embedding import embed_again, embed_catalog
from lookalike.products.results import QueryCues
from lookalike.products.search import DEFAULT_SCOPE, ProductSearcher
from lookalike.vectors.neighbours import recall_of

WARM_UP_QUERIES = 3
RECALL_K = 30
LATENCY_QUERIES = 100
T = TypeVar("T")


def quality(
    searcher: ProductSearcher, items: list[CatalogItem], vectors: np.ndarray, top_k: int, scope: str,
    rerank: bool = False, read_text: bool = False, views: np.ndarray | None = None,
) -> dict:
    """The quality figures of the module doc; `views`: the queries' vectors from the head's second backbone
    (an index whose head has one)."""
    in_index = Counter(row["category"] for row in searcher.index.rows)
    product_ids = {row["product_id"] for row in searcher.index.rows if row["product_id"]}
    top1, p10, ap30, recall, product_ranks = [], [], [], [], []
    for i, (item, vector) in enumerate(zip(items, vectors, strict=True)):
        cues = QueryCues() if views is None else QueryCues(head_view=views[i])
        if rerank or read_text:  # cues from the photo
            cues = searcher.query_cues(load_image(item.path), vector, rerank, read_text, cues)
        result = searcher.search_vector(vector, max(top_k, RECALL_K), scope, cues)
        hits, predicted = result.results[:top_k], result.categories[0][0]
        relevant = [hit.category == item.category for hit in hits]
        top1.append(predicted == item.category)
        p10.append(precision_at_k(relevant, 10))
        ap30.append(average_precision_at_k(relevant, 30, in_index[item.category]))
        exact = searcher.exact_ids(vector, RECALL_K, scope, searcher.categorize(vector, cues))
        recall.append(recall_of([hit.id for hit in result.results[:RECALL_K]], exact))
        if item.product_id in product_ids:
            found = [i for i, hit in enumerate(result.results) if hit.product_id == item.product_id]
            product_ranks.append(found[0] if found else len(result.results))
    report = {
        "top1_accuracy": float(np.mean(top1)),
        "precision_at_10": float(np.mean(p10)),
        "map_at_30": float(np.mean(ap30)),
        "ann_recall_at_30": float(np.mean(recall)),
        "top1_accuracy_se": _standard_error(top1),
        "precision_at_10_se": _standard_error(p10),
    }
    if product_ranks:
        ranks = np.asarray(product_ranks)
        report["product_recall_at_1"] = float(np.mean(ranks < 1))
        report["product_recall_at_10"] = float(np.mean(ranks < 10))
        report["product_recall_at_1_se"] = _standard_error(ranks < 1)
        report["product_recall_at_10_se"] = _standard_error(ranks < 10)
        report["product_queries"] = len(product_ranks)
    return report


def _standard_error(values: Sequence[float] | np.ndarray) -> float:
    """The standard error of a mean over queries (of 0/1 outcomes: sqrt(p(1 - p) / n)), so a figure says how
    far from it another run on as many queries could fall."""
    values = np.asarray(values, np.float64)
    return float(values.std() / np.sqrt(len(values))) if len(values) else float("nan")


def spread(items: Sequence[T], count: int) -> list[T]:
    """`count` of `items` (all when fewer) spread evenly over them: timed queries cover every category of a
    category-sorted query set, not the first few."""
    return [items[i] for i in np.linspace(0, len(items) - 1, min(count, len(items))).astype(int)]


def latency(
    searcher: ProductSearcher, items: list[CatalogItem], top_k: int, scope: str, count: int, rerank: bool = False,
    read_text: bool = False,
) -> dict:
    """p50 / p95 wall time in ms of whole queries, on `count` items spread evenly over `items`."""
    sample = spread(items, count)
    for item in sample[:WARM_UP_QUERIES]:
        searcher.search(item.path, top_k, scope, rerank, read_text)
    times = []
    for item in sample:
        start = time.perf_counter()
        searcher.search(item.path, top_k, scope, rerank, read_text)
        times.append(1000.0 * (time.perf_counter() - start))
    return {
        "latency_ms_p50": float(np.percentile(times, 50)),
        "latency_ms_p95": float(np.percentile(times, 95)),
        "latency_queries": len(times),
    }


def evaluate(
    searcher: ProductSearcher,
    queries: list[CatalogItem],
    top_k: int = 30,
    scope: str = DEFAULT_SCOPE,
    latency_queries: int = LATENCY_QUERIES,
    show_bar: bool = True,
    rerank: bool | None = None,
    read_text: bool | None = None,
    unknown: list[CatalogItem] | None = None,
) -> dict:
    """The quality and latency figures of the module doc on `queries`; with `unknown` (photos of products the
    catalog does not sell), the in-catalog decision's figures too (`evaluation.open_set`)."""
    rerank = searcher.wants("rerank", rerank)  # as search decides; an index without local features fails here
    read_text = searcher.wants("read_text", read_text)
    embedded = embed_catalog(queries, searcher.embedder.for_queries(), show_bar=show_bar)  # as search embeds them
    if not embedded.items:
        raise ValueError(f"no readable query photo ({len(embedded.skipped)} skipped)")
    view = searcher.part("head_view")
    views = None if view is None else embed_again(embedded, view.embedder, show_bar)
    open_set = {}
    if unknown is not None:
        others = embed_catalog(unknown, searcher.embedder.for_queries(), show_bar=show_bar)
        if not others.items:
            raise ValueError(f"no readable unknown query photo ({len(others.skipped)} skipped)")
        other_views = None if view is None else embed_again(others, view.embedder, show_bar)
        open_set = open_set_quality(searcher, (embedded.items, embedded.vectors, views),
                                    (others.items, others.vectors, other_views), top_k, scope)
    return {
        "model": searcher.model,
        "scope": scope,
        "rerank": rerank,
        "read_text": read_text,
        "top_k": top_k,
        "queries": len(embedded.items),
        **quality(searcher, embedded.items, embedded.vectors, top_k, scope, rerank, read_text, views),
        **open_set,
        **latency(searcher, embedded.items, top_k, scope, latency_queries, rerank, read_text),
        "skipped": embedded.skipped,
    }
