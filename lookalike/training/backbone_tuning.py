"""`train-embedding --tune-blocks N`: fine-tune the last stages of a product backbone on a catalog.

The index's vector is the backbone's own pooled feature, so tuning the backbone (rather than adding a head)
changes what search compares without a new model type: the result is a checkpoint in timm's layout that
`create_embedder(name, weights=PATH)` and `lookalike build --model NAME --weights PATH` load.

Loss: normalised-softmax classification (Zhai & Wu, "Classification is a strong baseline for deep metric
learning", 2019): every product with 2+ photos and every category has a unit proxy vector, the photo's unit
embedding is scored against them by cosine / temperature, and the two cross-entropies are summed. Products
pull their photos together and apart from other products; categories keep the shelf order for the photos
of one-photo products, which product proxies would only push apart. Proxies start at their photos' mean.

What makes it fit a 2-core CPU: everything before the last `blocks` stages is frozen and run once per
photo (its feature maps kept in memory, float16); batch norm keeps its ImageNet statistics (small batches
would only add noise to them); augmentation works on those maps: a mirror image, and a random crop of each
batch (70-100% of the side). The frozen stages run in onnxruntime, much faster than eager torch, so a run
on the shared catalog takes minutes (timings in docs/experiments/backbone-tuning.md). A GPU (`device="cuda"`)
runs the same code, the frozen stages in torch.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lookalike.images.loading import ImageError, load_image
from lookalike.paths import cache_dir
from lookalike.products.catalog import CatalogItem
from lookalike.training.settings import TuneConfig
from model_zoo.onnx_runtime import OnnxSession, onnx_twin
from model_zoo.product_embedders import ProductEmbedder
from model_zoo.weights import fingerprint


class Tail(nn.Module):
    """The trainable end of a timm EfficientNet: its last stages, head convolution and pooling."""

    def __init__(self, model: nn.Module, blocks: int) -> None:
        super().__init__()
        if not all(hasattr(model, name) for name in ("conv_stem", "bn1", "blocks", "conv_head", "bn2")):
            raise ValueError(
                f"backbone tuning supports timm EfficientNet models (the Lite defaults), not {type(model).__name__}; "
                "train a head on its frozen features instead (without --tune-blocks)"
            )
        if not 1 <= blocks < len(model.blocks):
            raise ValueError(f"--tune-blocks must be between 1 and {len(model.blocks) - 1}, got {blocks}")
        self.model = model
        self.split = len(model.blocks) - blocks
        self.front = nn.Sequential(model.conv_stem, model.bn1, *model.blocks[: self.split])  # frozen, shared

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        features = self.model.bn2(self.model.conv_head(self.model.blocks[self.split :](maps)))
        return nn.functional.normalize(self.model.forward_head(features, pre_logits=True), dim=1)

    def parameters_to_train(self) -> list[nn.Parameter]:
        modules = [*self.model.blocks[self.split :], self.model.conv_head, self.model.bn2]
        return [p for module in modules for p in module.parameters()]


def frozen_maps(
    items: list[CatalogItem], embedder: ProductEmbedder, tail: Tail, device: str
) -> tuple[torch.Tensor, list[int], list[str]]:
    """float16 feature maps at the split of every readable photo, their item numbers, and the unreadable
    photos (skipped, as a build skips them). Photos are decoded in two threads, two batches ahead; on a CPU
    the frozen stages run in onnxruntime (exported once, checked against torch): 67 photos/s against 26 in
    eager torch for Lite1, decoding included."""
    batch = 8 if device == "cpu" else 64
    session = _onnx_front(tail, embedder) if device == "cpu" else None
    skipped: list[str] = []

    def pixels(start: int) -> tuple[np.ndarray, list[int]]:
        arrays, kept = [], []
        for number in range(start, min(start + batch, len(items))):
            try:
                arrays.append(embedder.prepare(load_image(items[number].path, draft=embedder.preprocess.draft)))
                kept.append(number)
            except ImageError as exc:
                skipped.append(f"{items[number].path}: {exc}")
        return np.stack(arrays) if arrays else np.zeros((0, 3, 1, 1), np.float32), kept

    chunks, kept, pending = [], [], deque()

    def front(decoded: Future) -> None:
        array, numbers = decoded.result()
        if numbers:
            maps = session.run(array) if session is not None else tail.front(torch.from_numpy(array).to(device))
            chunks.append(torch.as_tensor(maps).half().cpu())
            kept.extend(numbers)

    with ThreadPoolExecutor(2) as pool, torch.inference_mode():
        for start in range(0, len(items), batch):
            pending.append(pool.submit(pixels, start))
            if len(pending) > 2:
                front(pending.popleft())
        while pending:
            front(pending.popleft())
    if not chunks:
        raise ValueError(f"no readable photo among the {len(items)} catalog items")
    return torch.cat(chunks), kept, skipped


def _onnx_front(tail: Tail, embedder: ProductEmbedder) -> OnnxSession | None:
    size = embedder.preprocess.size
    return onnx_twin(
        tail.front, f"{embedder.name}-front", {**fingerprint(embedder.config), "front_stages": tail.split},
        cache_dir() / "onnx", example=torch.zeros(2, 3, size, size),
        probe=torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)),
        matches=lambda expected, found: bool(np.abs(expected[0] - found[0]).max() <= 1e-3 * np.abs(expected[0]).max()),
    )


def _labels(values: list[str], keep: np.ndarray) -> tuple[torch.Tensor, list[str]]:
    """Class numbers (-1 where not `keep`) and the class names."""
    names = sorted({v for v, k in zip(values, keep, strict=True) if k})
    number = {name: i for i, name in enumerate(names)}
    return torch.tensor([number[v] if k else -1 for v, k in zip(values, keep, strict=True)]), names


def _proxies(embeddings: torch.Tensor, labels: torch.Tensor, count: int) -> nn.Parameter:
    """One unit vector per class, at the mean of its photos' embeddings (made on their device, so the
    optimizer gets a leaf tensor there)."""
    labels = labels.to(embeddings.device)
    sums = torch.zeros(count, embeddings.shape[1], device=embeddings.device)
    sums.index_add_(0, labels[labels >= 0], embeddings[labels >= 0])
    return nn.Parameter(nn.functional.normalize(sums, dim=1))


def _crop(maps: torch.Tensor, smallest: float) -> torch.Tensor:
    """One random square window of a batch's maps, its side `smallest` to 1 times their shorter side: a crop
    of the photos at the maps' resolution (the rest of the network pools whatever size it gets), so a product
    framed tighter or off-centre is still itself, and the loss cannot reach zero by memorising whole photos."""
    height, width = maps.shape[-2:]
    size = int(torch.randint(max(1, round(smallest * min(height, width))), min(height, width) + 1, ()))
    top, left = int(torch.randint(0, height - size + 1, ())), int(torch.randint(0, width - size + 1, ()))
    return maps[..., top : top + size, left : left + size]


def _loss(embeddings: torch.Tensor, proxies: nn.Parameter, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    kept = labels >= 0
    if not kept.any():
        return embeddings.sum() * 0.0
    logits = embeddings[kept] @ nn.functional.normalize(proxies, dim=1).T / temperature
    return nn.functional.cross_entropy(logits, labels[kept])


def tune_backbone(
    items: list[CatalogItem], embedder: ProductEmbedder, out_dir: Path, config: TuneConfig, device: str = "cpu"
) -> dict:
    """Tune a copy of `embedder`'s backbone on `items` (category, and product_id where 2+ photos share one);
    saves `out_dir/backbone.pt` and returns the training log (also in `out_dir/tuning_result.json`)."""
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    tail = Tail(copy.deepcopy(embedder.model), config.blocks).to(device).eval()  # eval: BN statistics frozen
    maps, kept, skipped = frozen_maps(items, embedder, tail, device)
    items = [items[number] for number in kept]
    front_seconds = time.perf_counter() - start
    print(f"frozen stages: {len(items)} photos in {front_seconds:.0f} s ({len(skipped)} unreadable, skipped)",
          file=sys.stderr, flush=True)
    ids = [item.product_id for item in items]
    counts = Counter(ids)
    products, product_names = _labels(ids, np.array([bool(pid) and counts[pid] >= 2 for pid in ids]))
    categories, category_names = _labels([item.category for item in items], np.ones(len(items), bool))
    with torch.inference_mode():
        initial = torch.cat([tail(maps[i : i + 64].to(device).float()) for i in range(0, len(maps), 64)])
    proxies = [_proxies(initial.clone(), labels, len(names)) for labels, names in
               ((products, product_names), (categories, category_names))]
    optimizer = torch.optim.AdamW(
        [{"params": tail.parameters_to_train(), "lr": config.lr}, {"params": proxies, "lr": config.proxy_lr}],
        weight_decay=1e-4,
    )
    log = []
    for epoch in range(config.epochs):
        order = torch.randperm(len(items))
        total, seen = 0.0, 0
        for batch in order.split(config.batch_size):
            x = maps[batch].to(device).float()
            flip = torch.rand(len(batch)) < 0.5
            x[flip] = x[flip].flip(-1)
            x = _crop(x, config.crop)
            embeddings = tail(x)
            loss = sum(_loss(embeddings, proxy, labels[batch].to(device), config.temperature)
                       for proxy, labels in zip(proxies, (products, categories), strict=True))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(batch), seen + len(batch)
        log.append({"epoch": epoch + 1, "loss": round(total / seen, 4),
                    "seconds": round(time.perf_counter() - start, 1)})
        print(f"epoch {log[-1]}", file=sys.stderr, flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "backbone.pt"
    partial = checkpoint.with_suffix(".pt.partial")
    state = {k: v.cpu() for k, v in tail.model.state_dict().items()}
    torch.save({"state_dict": state, "model": embedder.name, "config": asdict(config)}, partial)
    partial.replace(checkpoint)  # an interrupted run never leaves a half-written checkpoint
    result = {
        "model": embedder.name,
        "config": asdict(config),
        "photos": len(items),
        "products": len(product_names),
        "categories": len(category_names),
        "skipped": skipped,
        "frozen_pass_seconds": round(front_seconds, 1),
        "epochs": log,
        "checkpoint": str(checkpoint),
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out_dir / "tuning_result.json").write_text(json.dumps(result, indent=2))
    return result
