"""`train-head` and `train-embedding` sub-commands of `lookalike`."""

from __future__ import annotations

import argparse
from pathlib import Path

from lookalike.cli.common import UserError, print_result
from lookalike.training.settings import MINING_MODES, TripletConfig, TuneConfig

FACE_BACKBONE = "efficientnet_lite0_face"

LOAD_HINT = {
    "face": "create_face_model('projected', weights=CHECKPOINT)",
    "product": "index_builder.py CATALOG --model projected --weights CHECKPOINT",
}


def run_train_head(args: argparse.Namespace) -> int:
    import torch

    from lookalike.training.head import train_head

    if args.finetune and not torch.cuda.is_available():
        raise UserError(
            "--finetune trains the backbone and needs a CUDA GPU, and none is visible here; "
            "without it, train-head trains heads on frozen cached features (the default)"
        )
    if not Path(args.catalog).is_dir():
        raise UserError(f"catalog folder not found: {args.catalog}")
    result = train_head(
        Path(args.catalog),
        Path(args.out),
        model=args.model,
        architectures=args.heads,
        max_epochs=args.epochs,
        patience=args.patience,
        install=Path(args.install) if args.install else None,
        force=args.force,
        finetune_device="cuda" if args.finetune else None,
    )
    best, installed = result["best"], result["installed_head"]
    text = (
        f"{result['report']}\nbest: {best['architecture']} {best['optimizer']} lr={best['lr']} "
        f"(val {best['val_acc']:.4f}, test {best['test_acc']:.4f}; refit on train+val: test "
        f"{installed['test_acc']:.4f}); best test of any variant "
        f"{result['best_test_acc_any_variant']:.4f}; build-time head (logistic regression) on the same "
        f"test photos: {result['baseline_test_acc']:.4f}; "
        f"{result['seconds']:.0f} s; report in {args.out}"
        + (f"; installed into {args.install}" if result.get("installed") else "")
        + (
            "; NOT installed: the build-time head scores higher on the same test photos (--force to install)"
            if args.install and not result.get("installed")
            else ""
        )
    )
    print_result(result, args.json, text)
    return 0


def run_tune_backbone(args: argparse.Namespace, data: Path) -> int:
    import torch

    from lookalike.products.catalog import read_catalog
    from lookalike.products.tuning import tune_backbone
    from lookalike.training.features import resolve_backbone
    from model_zoo.product_embedders import create_embedder
    from model_zoo.registry import DEFAULT_PRODUCT_MODEL

    name = args.backbone or DEFAULT_PRODUCT_MODEL
    if resolve_backbone(name).kind != "product":
        raise UserError(f"--tune-blocks tunes a product backbone (e.g. {DEFAULT_PRODUCT_MODEL}), not {name}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    items = read_catalog(data, Path(args.manifest) if args.manifest else None)
    config = TuneConfig(blocks=args.tune_blocks, epochs=args.epochs or TuneConfig.epochs, lr=args.lr or TuneConfig.lr)
    try:
        result = tune_backbone(items, create_embedder(name, backend="torch"), Path(args.out), config, device)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    manifest = f" --manifest {args.manifest}" if args.manifest else ""
    text = (
        f"{result['photos']} photos, {result['products']} products with 2+ photos, {result['categories']} "
        f"categories ({len(result['skipped'])} unreadable files skipped); loss {result['epochs'][0]['loss']} -> "
        f"{result['epochs'][-1]['loss']} in {result['seconds']:.0f} s on {device}\n"
        f"checkpoint: {result['checkpoint']} (lookalike build {data}"
        f"{manifest} --model {name} --weights {result['checkpoint']} --out INDEX)"
    )
    print_result(result, args.json, text)
    return 0


def run_train_embedding(args: argparse.Namespace) -> int:
    from lookalike.training.embedding import train_embedding
    from lookalike.training.features import resolve_backbone
    from lookalike.training.identity_data import from_catalog, from_folders

    data = Path(args.data)
    if not data.is_dir():
        raise UserError(f"data folder not found: {data}")
    if args.tune_blocks:
        return run_tune_backbone(args, data)
    identities = from_catalog(data, Path(args.manifest), args.identity_column) if args.manifest else from_folders(data)
    backbone = resolve_backbone(args.backbone or FACE_BACKBONE)  # an unknown name: one line from `cli.main.run`
    epochs, lr = args.epochs or TripletConfig.epochs, args.lr or TripletConfig.lr
    config = TripletConfig(mining=args.mining, margin=args.margin, epochs=epochs, lr=lr)
    pairs = Path(args.pairs) if args.pairs else None
    result = train_embedding(identities, backbone, Path(args.out), config, pairs)
    before, after = result["frozen"], result["trained"]
    text = (
        f"{result['photos']} photos, {result['trainable_identities']} identities with 2+ photos; "
        f"{before['pairs']} pairs in identity-disjoint folds, each fold scored by a head trained "
        f"without its identities\n"
        f"AUC {before['auc']:.4f} -> {after['auc']:.4f}, accuracy {before['accuracy']:.4f} -> "
        f"{after['accuracy']:.4f}, TAR@FAR=1e-3 {before['tar_at_far_1e-3']:.4f} -> "
        f"{after['tar_at_far_1e-3']:.4f}\n"
        f"checkpoint: {result['checkpoint']} ({LOAD_HINT[backbone.kind]}); "
        f"report in {args.out}"
    )
    print_result(result, args.json, text)
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    head = subparsers.add_parser(
        "train-head", help="rerun the report's classifier-head grid on a catalog (frozen cached features)"
    )
    head.add_argument("--catalog", required=True, help="catalog folder: <category>/<image>")
    head.add_argument(
        "--model", help="product embedder (default: the --install index's, else the engine's default)"
    )
    head.add_argument("--out", default="reports/train-head", help="folder for tables, plots and the head")
    head.add_argument("--install", metavar="INDEX_DIR", help="install the best head into this index")
    head.add_argument(
        "--force", action="store_true", help="install even if the build-time head scores higher on test"
    )
    head.add_argument("--heads", nargs="+", default=["linear", "dense512x2"], help="head architectures")
    head.add_argument("--epochs", type=int, default=50, help="most epochs per variant (default 50)")
    head.add_argument("--patience", type=int, default=5, help="early-stopping patience on val loss")
    head.add_argument("--finetune", action="store_true", help="also fine-tune the backbone (CUDA only)")
    head.add_argument("--json", action="store_true", help="print JSON")
    head.set_defaults(func=run_train_head)

    emb = subparsers.add_parser(
        "train-embedding",
        help="train the report's triplet embedding head and compare it with frozen features",
    )
    emb.add_argument("--data", required=True, help="<identity>/<image> folders, or a catalog with --manifest")
    emb.add_argument("--manifest", help="catalog manifest CSV (the product engine's format)")
    emb.add_argument(
        "--identity-column", default="product_id", choices=("product_id", "category"), help="with --manifest"
    )
    emb.add_argument("--pairs", help="verification pairs (LFW pairs.txt or CSV); default: DATA/pairs.txt")
    emb.add_argument(
        "--backbone",
        help="frozen feature model: a face model (photos go through the face engine) or a product "
        f"model (whole photos); default {FACE_BACKBONE}, or the product default with --tune-blocks",
    )
    emb.add_argument(
        "--tune-blocks", type=int, default=0, metavar="N",
        help="fine-tune the product backbone's last N stages on the catalog (category and product_id) "
        "instead of training a head on frozen features; saves OUT/backbone.pt for build --weights",
    )
    emb.add_argument("--device", help="with --tune-blocks: cpu or cuda (default: cuda when visible)")
    emb.add_argument("--mining", choices=MINING_MODES, default="semi-hard")
    emb.add_argument("--margin", type=float, default=0.5)
    emb.add_argument(
        "--epochs", type=int, help=f"default {TripletConfig.epochs} ({TuneConfig.epochs} with --tune-blocks)"
    )
    emb.add_argument("--lr", type=float, help=f"default {TripletConfig.lr} ({TuneConfig.lr} with --tune-blocks)")
    emb.add_argument("--out", default="reports/train-embedding", help="folder for the report and checkpoint")
    emb.add_argument("--json", action="store_true", help="print JSON")
    emb.set_defaults(func=run_train_embedding)
