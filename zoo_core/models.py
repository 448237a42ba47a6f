"""Model creation through the zoo registry and timm."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from zoo_core.plugins import get_model_spec

logger = logging.getLogger(__name__)


class ModelConfigError(ValueError):
    """A model setting in a recipe that cannot be honoured."""


def check_img_size(model_name: str, img_size: int | tuple[int, int]) -> None:
    """Raise ModelConfigError when the model cannot run at ``img_size``."""
    spec = get_model_spec(model_name)
    height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
    if spec.check_img_size is None:
        return
    try:
        spec.check_img_size(height, width)
    except ValueError as error:
        raise ModelConfigError(f"data.img_size={height}x{width} does not suit {model_name}: {error}") from None


def pretrained_arguments(pretrained: str | None) -> dict:
    """Translate the recipe's ``model.pretrained`` into timm.create_model arguments."""
    if pretrained is None:
        return {"pretrained": False}
    if pretrained == "default":
        return {"pretrained": True}
    if pretrained.startswith("hf-hub:"):
        return {"pretrained": True, "pretrained_cfg_overlay": {"hf_hub_id": pretrained[len("hf-hub:"):]}}
    if pretrained.startswith(("http://", "https://")):
        return {"pretrained": True, "pretrained_cfg_overlay": {"url": pretrained, "hf_hub_id": None}}
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise ModelConfigError(
            f"model.pretrained={pretrained!r} is not a file, an https URL, 'hf-hub:ORG/NAME' or 'default'"
        )
    return {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path), "hf_hub_id": None, "url": None}}


def create_model(model_config, num_classes: int, img_size: int | None = None) -> torch.nn.Module:
    """Build the recipe's model with ``num_classes`` outputs, loading pretrained weights if named."""
    import timm

    spec = get_model_spec(model_config.name)
    if img_size is not None:
        check_img_size(spec.name, img_size)
    kwargs = dict(model_config.kwargs)
    kwargs.update(pretrained_arguments(model_config.pretrained))
    try:
        model = timm.create_model(
            spec.name,
            num_classes=num_classes,
            drop_rate=model_config.drop_rate,
            drop_path_rate=model_config.drop_path_rate,
            **kwargs,
        )
    except (OSError, RuntimeError) as error:
        if model_config.pretrained is None:
            raise
        raise ModelConfigError(
            f"could not load the pretrained weights {model_config.pretrained!r} for {spec.name}: {error}. "
            "Without network access, download them once on a connected machine into the Hugging Face "
            "cache and set HF_HUB_OFFLINE=1, or set model.pretrained to a local .safetensors/.pth file, "
            "or set model.pretrained=null to start from random weights."
        ) from error
    return model


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
