"""Product sub-commands of `python -m lookalike`: search, eval-products, split-catalog."""

from __future__ import annotations

import argparse
from pathlib import Path

from lookalike.catalog_source import attach_metadata, from_manifest, read_catalog
from lookalike.catalog_split import split_items, write_manifest
from lookalike.cli import UserError, print_result
from lookalike.imageio import ImageError, load_image
from lookalike.product_eval import evaluate
from lookalike.search import DEFAULT_SCOPE, SCOPES, ProductSearcher
from model_zoo.registry import WeightsUnavailableError

SEARCH_HIT_KEYS = ("rank", "path", "category", "product_id", "title", "similarity", "distance")


def _searcher(index: Path) -> ProductSearcher:
    try:
        return ProductSearcher.load(index)
    except WeightsUnavailableError as exc:
        raise UserError(str(exc)) from None


def run_search(args: argparse.Namespace) -> int:
    try:
        image = load_image(args.image)
    except ImageError as exc:
        raise UserError(str(exc)) from None
    result = _searcher(args.index).search(image, args.top_k, args.scope).to_dict()
    payload = {
        "model": result["model"],
        "scope": result["scope"],
        "categories": result["categories"],
        "results": [{key: hit[key] for key in SEARCH_HIT_KEYS} for hit in result["results"]],
        "timings_ms": result["timings_ms"],
    }
    guess = ", ".join(f"{c['label']} {c['prob']:.2f}" for c in payload["categories"][:3])
    lines = [f"categories: {guess}"] + [
        f"{hit['rank']:3d}. {hit['similarity']:.3f}  {hit['category']:15s} {hit['path']}"
        for hit in payload["results"]
    ]
    print_result(payload, args.json, "\n".join(lines))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    if (args.queries is None) == (args.queries_manifest is None):
        raise UserError("give exactly one of --queries QUERY_DIR or --queries-manifest CSV")
    queries = read_catalog(args.queries) if args.queries else read_catalog(args.queries_manifest)
    report = evaluate(_searcher(args.index), queries, args.top_k, args.scope, args.latency_queries)
    text = "\n".join(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}"
                     for key, value in report.items() if key != "skipped")
    print_result(report, args.json, text)
    return 0


def run_split(args: argparse.Namespace) -> int:
    items = read_catalog(args.source)
    if args.metadata:
        items = attach_metadata(items, from_manifest(args.metadata, args.source))
    catalog, queries = split_items(items, args.fraction)
    paths = {"catalog": args.out / "catalog.csv", "queries": args.out / "queries.csv"}
    write_manifest(catalog, paths["catalog"])
    write_manifest(queries, paths["queries"])
    payload = {"catalog": str(paths["catalog"]), "catalog_items": len(catalog),
               "queries": str(paths["queries"]), "query_items": len(queries)}
    print_result(payload, args.json, f"{len(catalog)} catalog rows -> {paths['catalog']}\n"
                                     f"{len(queries)} query rows -> {paths['queries']}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    search = subparsers.add_parser("search", help="find the catalog items most like a photo")
    search.add_argument("image", help="query photo")
    search.add_argument("--index", type=Path, required=True, help="index folder from index_builder.py")
    search.add_argument("--top-k", type=int, default=30)
    search.add_argument("--scope", choices=SCOPES, default=DEFAULT_SCOPE)
    search.add_argument("--json", action="store_true")
    search.set_defaults(func=run_search)

    evaluation = subparsers.add_parser("eval-products", help="score an index with labelled query photos")
    evaluation.add_argument("--index", type=Path, required=True)
    evaluation.add_argument("--queries", type=Path, help="folder of category sub-folders of query photos")
    evaluation.add_argument("--queries-manifest", type=Path, help="query manifest CSV (from split-catalog)")
    evaluation.add_argument("--top-k", type=int, default=30)
    evaluation.add_argument("--scope", choices=SCOPES, default=DEFAULT_SCOPE)
    evaluation.add_argument("--latency-queries", type=int, default=100,
                            help="queries timed one by one, end to end (quality uses all queries)")
    evaluation.add_argument("--json", action="store_true")
    evaluation.set_defaults(func=run_eval)

    split = subparsers.add_parser(
        "split-catalog", help="write catalog.csv / queries.csv manifests splitting each category (no copies)"
    )
    split.add_argument("source", type=Path, help="folder of category sub-folders, or a manifest CSV")
    split.add_argument("--out", type=Path, required=True, help="folder for catalog.csv and queries.csv")
    split.add_argument("--metadata", type=Path,
                       help="manifest giving product ids / titles of SOURCE's photos (matched by path)")
    split.add_argument("--fraction", type=float, default=0.5, help="share of each category in the catalog")
    split.add_argument("--json", action="store_true")
    split.set_defaults(func=run_split)
