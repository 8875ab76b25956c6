"""Product sub-commands of `lookalike`: build, search, eval-products, split-catalog.

Engines are imported inside each command, so `lookalike --help` answers without loading torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lookalike.cli.common import UserError, print_result
from lookalike.images.loading import ImageError, load_image
from lookalike.presentation import NOT_IN_CATALOG, words_read
from lookalike.products.catalog import attach_metadata, from_manifest, read_catalog
from lookalike.products.heads import NeighbourVote
from lookalike.products.options import DEFAULT_TREES, ENGINES, BuildOptions
from lookalike.products.parts.head_view import DEFAULT_HEAD_MODEL
from lookalike.products.search import DEFAULT_SCOPE, SCOPES, ProductSearcher
from lookalike.products.splits import split_items, write_manifest
from lookalike.products.tuning import MIN_PHOTOS_PER_CATEGORY, TUNING_MODES
from model_zoo.registry import DEFAULT_PRODUCT_MODEL, WeightsUnavailableError


def _searcher(index: Path) -> ProductSearcher:
    try:
        return ProductSearcher.load(index)
    except WeightsUnavailableError as exc:
        raise UserError(str(exc)) from None


def _matches(hit: dict) -> str:
    """A hit's evidence (keypoints one homography explains, printed words on both), so the text shows why it
    ranks there."""
    inliers, shared_words = hit["inliers"], hit["shared_words"]
    evidence = ([] if inliers is None else [f"{inliers} keypoint matches"]) + (
        [f"words {', '.join(shared_words)}"] if shared_words else [])
    return f"  [{'; '.join(evidence)}]" if evidence else ""


def run_search(args: argparse.Namespace) -> int:
    try:
        image = load_image(args.image)
    except ImageError as exc:
        raise UserError(str(exc)) from None
    payload = _searcher(args.index).search(image, args.top_k, args.scope, args.rerank, args.read_text).summary()
    guess = ", ".join(f"{c['label']} {c['prob']:.2f}" for c in payload["categories"][:3])
    read = payload["words"]
    lines = ([NOT_IN_CATALOG] if payload["in_catalog"] is False else []) + [
        f"categories: {guess}" + (" (not confident)" if payload["in_catalog"] is False else "")
    ] + ([words_read(read)] if read is not None else []) + [
        f"{hit['rank']:3d}. {hit['similarity']:.3f}  {hit['category']:15s} {hit['photo']}{_matches(hit)}"
        for hit in payload["results"]
    ]
    print_result(payload, args.json, "\n".join(lines))
    return 0


def build_options(args: argparse.Namespace) -> BuildOptions:
    """The build's options from the arguments `add_build_arguments` declares (the one place they meet)."""
    return BuildOptions(
        model=args.model, fast=args.fast, tune=args.tune, weights=args.weights, size=args.size, flip=args.flip,
        device=args.device,
        manifest=args.manifest, trees=args.trees, batch_size=args.batch_size, store=args.store, update=args.update,
        engine=args.engine, ray_address=args.ray_address, local_features=args.local_features,
        read_text=args.read_text, head_model=args.head_model, vote=NeighbourVote(weight=args.vote_weight),
    )


def run_build(args: argparse.Namespace) -> int:
    from lookalike.products.build import build_index

    report = build_index(args.catalog, args.out, build_options(args), show_bar=not args.json)
    accuracy, store, update = report["head"]["held_out_accuracy"], report["store"], report.get("update")
    words = report.get("words")
    tuning = report.get("tuning")
    lines = [
        f"backbone: {tuning['reason'] if tuning else 'frozen (' + report['model'] + ')'}",
        f"indexed {report['items']} photos in {len(report['counts'])} categories into {args.out} "
        f"({report['build_seconds']} s, {report['images_per_second']} img/s, {report['cache_hits']} cached)",
        f"category head held-out accuracy: {'n/a' if accuracy is None else f'{accuracy:.3f}'}"
        + (f" (reading {report['head_view']['name']} too)" if "head_view" in report else ""),
        f"vectors in the {store['kind']} store"
        + (f" at {store['uri']}, collection {store['collection']}" if store["uri"] else ""),
        *([f"update: kept {update['kept']}, added {update['added']}, removed {update['removed']}"] if update else []),
        *([f"printed words on {words['with_words']} of {words['items']} photos ({words['reused']} kept from the "
           f"index, {words['cached']} from the cache, the rest read)"] if words else []),
        f"skipped {report['skipped_count']} unreadable files",
        *(f"  {skipped['path']}: {skipped['reason']}" for skipped in report["skipped"]),
    ]
    print_result(report, args.json, "\n".join(lines))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from lookalike.evaluation.products import evaluate

    if (args.queries is None) == (args.queries_manifest is None):
        raise UserError("give exactly one of --queries QUERY_DIR or --queries-manifest CSV")
    queries = read_catalog(args.queries) if args.queries else read_catalog(args.queries_manifest)
    unknown = read_catalog(args.unknown_queries) if args.unknown_queries else None
    try:
        report = evaluate(_searcher(args.index), queries, args.top_k, args.scope, args.latency_queries,
                          show_bar=not args.json, rerank=args.rerank, read_text=args.read_text, unknown=unknown)
    except ValueError as exc:
        raise UserError(str(exc)) from None
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


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """`lookalike build` and `index_builder.py` take the same arguments."""
    parser.add_argument("catalog", type=Path, help="folder of category sub-folders, or a manifest CSV")
    parser.add_argument("--out", type=Path, required=True, help="index folder (replaced atomically)")
    parser.add_argument("--model", default=DEFAULT_PRODUCT_MODEL, help="product model name, or a timm name")
    parser.add_argument("--fast", action="store_true",
                        help="the frozen build: no tuning, no keypoints, the head's second view (minutes less, "
                             "finds a product like the query's more often than the query's own: "
                             "docs/product-search.md)")
    parser.add_argument("--tune", choices=TUNING_MODES,
                        help=f"tune the backbone on the catalog: auto (default without --fast: from "
                             f"{MIN_PHOTOS_PER_CATEGORY} photos a category), always, never; an --update keeps its "
                             "tuned backbone unless always, or the catalog has outgrown it")
    parser.add_argument("--weights", help="weights file for --model (default: its packaged/pretrained ones)")
    parser.add_argument("--manifest", type=Path, help="CSV path,category[,title,price,url,product_id]")
    parser.add_argument("--trees", type=int, default=DEFAULT_TREES)
    parser.add_argument("--batch-size", type=int, help="photos per network call (default: the model's)")
    parser.add_argument("--size", type=int, help="input resolution (default: the model's)")
    parser.add_argument("--no-flip", dest="flip", action="store_false", default=None,
                        help="embed without the mirror-image test-time augmentation")
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        help="where the network runs (default: a GPU when one is visible, else the CPU)")
    parser.add_argument("--store", help="where the vectors go: annoy (default; annoy?dtype=float16), milvus "
                        "(Milvus Lite in the index folder), milvus:///path/file.db, milvus://host:19530 "
                        "(?index=FLAT|IVF_FLAT|HNSW); an --update keeps the index's store unless given")
    parser.add_argument("--update", action="store_true",
                        help="update the index at --out: embed new photos only (and extract only their local "
                             "features), drop deleted ones, refit the head (the index's own model is used)")
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="ray: embed on a Ray Data actor pool (this machine, or --ray-address)")
    parser.add_argument("--ray-address", help="a Ray cluster to join (ray://head:10001, or auto on a cluster node)")
    parser.add_argument("--local-features", action=argparse.BooleanOptionalAction, default=None,
                        help="store SIFT keypoints of every photo (size and time: docs/benchmarks.md) so search "
                             "can verify its first hits (default: on, off with --fast; an update keeps the index's)")
    parser.add_argument("--read-text", action="store_true", default=None,
                        help="read the words printed on every photo (OCR, slow: docs/benchmarks.md) so a query's "
                             "words vote for its category: for catalogs of printed packs")
    parser.add_argument("--head-model",
                        help="a second product model whose vector of each photo the category head reads beside "
                             "the index's own (its cost a query: docs/benchmarks.md); none: the index's vectors "
                             f"alone (default: {DEFAULT_HEAD_MODEL} for a frozen backbone, none for a tuned one)")
    parser.add_argument("--vote-weight", type=float, default=NeighbourVote.weight,
                        help="share of the nearest-photo vote in the category ranking (0: head alone)")
    parser.add_argument("--json", action="store_true", help="print the build report as JSON")
    parser.set_defaults(func=run_build)


def add_query_arguments(parser: argparse.ArgumentParser) -> None:
    """The index and how to query it: `search` and `eval-products` take the same (eval scores what search does)."""
    parser.add_argument("--index", type=Path, required=True, help="index folder from index_builder.py")
    parser.add_argument("--top-k", type=int, default=30, help="hits a query returns (default 30)")
    parser.add_argument("--scope", choices=SCOPES, default=DEFAULT_SCOPE,
                        help="category: the first category only; all: the whole catalog; blend: the whole "
                             "catalog, by similarity x category probability")
    parser.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=None,
                        help="verify the first hits with local features (default: on for an index built with "
                             "--local-features)")
    parser.add_argument("--read-text", action=argparse.BooleanOptionalAction, default=None,
                        help="let the query's printed words vote for its category (default: on for an index "
                             "built with --read-text)")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    add_build_arguments(subparsers.add_parser("build", help="build the product-search index of a catalog"))
    search = subparsers.add_parser("search", help="find the catalog items most like a photo")
    search.add_argument("image", help="query photo")
    add_query_arguments(search)
    search.add_argument("--json", action="store_true")
    search.set_defaults(func=run_search)

    evaluation = subparsers.add_parser("eval-products", help="score an index with labelled query photos")
    add_query_arguments(evaluation)
    evaluation.add_argument("--queries", type=Path, help="folder of category sub-folders of query photos")
    evaluation.add_argument("--queries-manifest", type=Path, help="query manifest CSV (from split-catalog)")
    evaluation.add_argument("--unknown-queries", type=Path,
                            help="photos of products the catalog does not sell (a folder, or a manifest CSV): "
                                 "scores the in-catalog decision (AUROC, share flagged)")
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
