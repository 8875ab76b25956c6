"""Backbone tuning's mechanism: the frozen stages' maps, the trained tail, its training loop, its vectors and
the tuned weights. Run on a catalog by `lookalike.products.tuning.tune_catalog` (the build, and
`train-embedding --tune-blocks N`); when to tune and with what settings is `lookalike.products.tuning_policy`.

The index's vector is the backbone's own pooled feature, so tuning the backbone (rather than adding a head)
changes what search compares without a new model type: the result is a checkpoint in timm's layout that
`create_embedder(name, weights=PATH)` and `lookalike build --model NAME --weights PATH` load.

Loss: normalised-softmax classification (Zhai & Wu, "Classification is a strong baseline for deep metric
learning", 2019): every product with 2+ photos and every category has a unit proxy vector, the photo's unit
embedding is scored against them by cosine / temperature, and the two cross-entropies are summed. Products
pull their photos together and apart from other products; categories keep the shelf order for the photos
of one-photo products, which product proxies would only push apart. Proxies start at their photos' mean.

What makes it fit a 2-core CPU: everything before the last `blocks` stages is frozen and run once per
photo and once per mirror image (its feature maps kept in memory, float16); batch norm keeps its ImageNet
statistics (small batches would only add noise to them); augmentation works on those maps: a mirror image, and
a random crop of each batch (70-100% of the side). The frozen stages run in onnxruntime, much faster than eager
torch, and the trained stages in channels-last layout (a quarter faster on this CPU), so a run on the shared
catalog takes minutes (timings in docs/experiments/backbone-tuning.md). The same maps then give the catalog's
vectors (`tail_vectors`: the photo and its mirror image, as the embedder's `flip` averages them), so a build that
tunes never runs the frozen stages twice. A GPU (`device="cuda"`) runs the same code, the frozen stages in torch.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lookalike.images.loading import ImageError
from lookalike.paths import cache_dir
from lookalike.products.tuning_policy import MIRROR_PASS, TuneConfig, tunable
from model_zoo.onnx_export import onnx_twin
from model_zoo.onnx_runtime import OnnxSession
from model_zoo.product_embedders import QUERY_MIRROR, ProductEmbedder
from model_zoo.weights import fingerprint


class Tail(nn.Module):
    """The trainable end of a timm EfficientNet: its last stages, head convolution and pooling."""

    def __init__(self, model: nn.Module, blocks: int) -> None:
        super().__init__()
        if not tunable(model):
            raise ValueError(
                f"backbone tuning supports timm EfficientNet models (the Lite defaults), not {type(model).__name__}; "
                "train a head on its frozen features instead (without --tune-blocks)"
            )
        if not 1 <= blocks < len(model.blocks):
            raise ValueError(f"--tune-blocks must be between 1 and {len(model.blocks) - 1}, got {blocks}")
        self.model = model
        self.split = len(model.blocks) - blocks
        self.front = nn.Sequential(model.conv_stem, model.bn1, *model.blocks[: self.split])  # frozen, shared

    def features(self, maps: torch.Tensor) -> torch.Tensor:
        """The pooled pre-logits features (not normalised) of frozen-stage maps."""
        features = self.model.bn2(self.model.conv_head(self.model.blocks[self.split :](maps)))
        return self.model.forward_head(features, pre_logits=True)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.features(maps), dim=1)

    def parameters_to_train(self) -> list[nn.Parameter]:
        modules = [*self.model.blocks[self.split :], self.model.conv_head, self.model.bn2]
        return [p for module in modules for p in module.parameters()]


@dataclass
class FrozenMaps:
    """float16 feature maps at the split of every readable photo and of its mirror image, the photos' numbers
    (positions in the list given), and the unreadable ones (number, reason)."""

    maps: torch.Tensor
    mirrored: torch.Tensor | None  # None: no mirror pass (`MIRROR_PASS`); the photos' maps flipped stand in
    kept: list[int]
    skipped: list[tuple[int, str]]


Prepare = Callable[[int], np.ndarray]  # photo number -> float32 [3, size, size]; raises ImageError

def frozen_maps(count: int, prepare: Prepare, tail: Tail, embedder: ProductEmbedder, device: str) -> FrozenMaps:
    """The frozen stages over photos 0..count-1 (`prepare` decodes one: a build's also notes its size and
    thumbnail). Photos are decoded in two threads, two batches ahead; on a CPU the frozen stages run in
    onnxruntime (exported once, checked against torch): 67 photos/s against 26 in eager torch for Lite1,
    decoding included, before the mirror images were added."""
    batch = 8 if device == "cpu" else 64
    session = _onnx_front(tail, embedder) if device == "cpu" else None
    skipped: list[tuple[int, str]] = []

    def pixels(start: int) -> tuple[np.ndarray, list[int]]:
        arrays, kept = [], []
        for number in range(start, min(start + batch, count)):
            try:
                arrays.append(prepare(number))
                kept.append(number)
            except ImageError as exc:
                skipped.append((number, str(exc)))
        return np.stack(arrays) if arrays else np.zeros((0, 3, 1, 1), np.float32), kept

    chunks: list[torch.Tensor] = []
    mirrored: list[torch.Tensor] = []
    kept: list[int] = []
    pending: deque[Future] = deque()

    def run(array: np.ndarray) -> torch.Tensor:
        maps = session.run(array) if session is not None else tail.front(torch.from_numpy(array).to(device))
        return torch.as_tensor(maps).half().cpu()

    def front(decoded: Future) -> None:
        array, numbers = decoded.result()
        if numbers:
            chunks.append(run(array))
            if MIRROR_PASS:
                mirrored.append(run(np.ascontiguousarray(array[..., ::-1])))
            kept.extend(numbers)

    with ThreadPoolExecutor(2) as pool, torch.inference_mode():
        for start in range(0, count, batch):
            pending.append(pool.submit(pixels, start))
            if len(pending) > 2:
                front(pending.popleft())
        while pending:
            front(pending.popleft())
    if not chunks:
        raise ValueError(f"no readable photo among the {count} catalog items")
    return FrozenMaps(torch.cat(chunks), torch.cat(mirrored) if MIRROR_PASS else None, kept, skipped)


def _onnx_front(tail: Tail, embedder: ProductEmbedder) -> OnnxSession | None:
    size = embedder.preprocess.size
    return onnx_twin(
        tail.front, f"{embedder.name}-front", {**fingerprint(embedder.config), "front_stages": tail.split},
        cache_dir() / "onnx", example=torch.zeros(2, 3, size, size),
        probe=torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)),
        matches=lambda expected, found: bool(np.abs(expected[0] - found[0]).max() <= 1e-3 * np.abs(expected[0]).max()),
    )


def _labels(values: Sequence[str | None], keep: np.ndarray) -> tuple[torch.Tensor, list[str]]:
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


def _batches(maps: torch.Tensor, device: str, size: int = 64):
    for start in range(0, len(maps), size):
        yield maps[start : start + size].to(device).float().contiguous(memory_format=torch.channels_last)


def tail_vectors(tail: Tail, frozen: FrozenMaps, device: str) -> np.ndarray:
    """float32 [N, dim] unit vectors of the photos whose maps `frozen` holds: each photo's features plus its
    mirror image's, normalised, as the embedder's `flip` makes them (the full network on a photo gives the
    same vector up to the maps' float16 rounding); without a mirror pass, the photo's maps flipped stand in."""
    return tail_sides(tail, frozen, device)[0]


def tail_sides(tail: Tail, frozen: FrozenMaps, device: str) -> tuple[np.ndarray, np.ndarray]:
    """`tail_vectors`, and the photos as search embeds a query (`ProductEmbedder.embed_prepared_sides`: the
    photo's features alone, normalised, unless QUERY_MIRROR), from the same pass: what the build's similarity
    and in-catalog fits query the catalog with (issue 38)."""
    tail.eval()
    alone, summed = [], []
    with torch.inference_mode():
        mirrors = _batches(frozen.mirrored, device) if frozen.mirrored is not None else None
        for maps in _batches(frozen.maps, device):
            own = tail.features(maps)
            # no mirror pass: the photo's maps flipped stand in for its mirror image's
            summed.append(own + tail.features(next(mirrors) if mirrors is not None else maps.flip(-1)))
            alone.append(own)
    vectors, photos = (nn.functional.normalize(torch.cat(r), dim=1).float().cpu().numpy() for r in (summed, alone))
    return vectors, vectors if QUERY_MIRROR else photos


Epoch = Callable[[int, Tail], None]  # (epoch number from 1, the tail): called after each epoch


def train_tail(
    tail: Tail,
    maps: torch.Tensor,
    categories: Sequence[str],
    product_ids: Sequence[str | None],
    config: TuneConfig,
    device: str = "cpu",
    on_epoch: Epoch | None = None,
) -> dict:
    """Train `tail` in place on the photos' frozen `maps` (categories, and product ids where 2+ photos share
    one); returns the log: products and categories trained, and each epoch's loss and time."""
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    tail.to(device).to(memory_format=torch.channels_last).eval()  # eval: batch norm statistics stay frozen
    counts = Counter(product_ids)
    products, product_names = _labels(product_ids, np.array([bool(pid) and counts[pid] >= 2 for pid in product_ids]))
    categories, category_names = _labels(list(categories), np.ones(len(categories), bool))
    with torch.inference_mode():
        initial = torch.cat([tail(batch) for batch in _batches(maps, device)])
    proxies = [_proxies(initial.clone(), labels, len(names)) for labels, names in
               ((products, product_names), (categories, category_names))]
    optimizer = torch.optim.AdamW(
        [{"params": tail.parameters_to_train(), "lr": config.lr}, {"params": proxies, "lr": config.proxy_lr}],
        weight_decay=1e-4,
    )
    epochs = []
    for epoch in range(config.epochs):
        order = torch.randperm(len(maps))
        total, seen = 0.0, 0
        for batch in order.split(config.batch_size):
            x = maps[batch].to(device).float()
            flip = torch.rand(len(batch)) < 0.5
            x[flip] = x[flip].flip(-1)
            x = _crop(x, config.crop).contiguous(memory_format=torch.channels_last)
            embeddings = tail(x)
            loss = sum(_loss(embeddings, proxy, labels[batch].to(device), config.temperature)
                       for proxy, labels in zip(proxies, (products, categories), strict=True))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(batch), seen + len(batch)
        epochs.append({"epoch": epoch + 1, "loss": round(total / seen, 4),
                       "seconds": round(time.perf_counter() - start, 1)})
        print(f"epoch {epochs[-1]}", file=sys.stderr, flush=True)
        if on_epoch is not None:
            on_epoch(epoch + 1, tail)
    tail.to(memory_format=torch.contiguous_format)
    return {"products": len(product_names), "categories": len(category_names), "epochs": epochs}


def tuned_state(tail: Tail) -> dict[str, torch.Tensor]:
    """The whole backbone's weights after tuning, in timm's layout (what `create_embedder(weights=...)` loads)."""
    return {k: v.detach().cpu().contiguous() for k, v in tail.model.state_dict().items()}


def save_backbone(state: dict[str, torch.Tensor], model: str, config: TuneConfig, path: Path) -> None:
    """Write a tuned backbone checkpoint atomically: an interrupted run never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    torch.save({"state_dict": state, "model": model, "config": asdict(config)}, partial)
    partial.replace(path)

