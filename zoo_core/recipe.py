"""Typed recipe schema, YAML loading and ``--set KEY=VALUE`` overrides.

A recipe has six sections (model, data, augment, optim, schedule, train) plus
a run name and seed. Unknown keys, wrong types and out-of-range values raise
:class:`RecipeError` naming the file, the key and the closest valid key. The
resolved recipe is written to every run folder and loads back unchanged.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)


class RecipeError(ValueError):
    """A recipe file or override that does not fit the schema."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class ModelConfig(_Section):
    """Architecture and its initialisation."""

    name: str = Field(description="registered model name, e.g. rdnet_tiny (see `zoo models`)")
    pretrained: str | None = Field(
        None,
        description="initial weights: null for random init, 'default' for the model's ImageNet "
        "weights, 'hf-hub:ORG/NAME', a local .safetensors/.pth file or an https URL",
    )
    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0, description="stochastic depth rate")
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the classifier")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="extra model arguments")


class DataConfig(_Section):
    """Dataset, split and loader settings."""

    name: str = Field("kaggle", description="registered dataset: kaggle, sample or phantom")
    root: str | None = Field(None, description="dataset folder holding Training/ and Testing/")
    img_size: int = Field(224, ge=16, le=4096, description="input height and width in pixels")
    val_fraction: float = Field(
        0.1, gt=0.0, lt=1.0, description="share of Training held out, stratified, for validation"
    )
    num_workers: int = Field(2, ge=0, le=64, description="DataLoader worker processes")
    phantom_images_per_class: int = Field(
        40, ge=2, le=100_000, description="phantom dataset: training images per class"
    )
    skip_bad_images: bool = Field(
        False, description="skip unreadable images (each recorded in summary.json) instead of stopping"
    )
    dedup: Literal["off", "remove_test", "regroup"] = Field(
        "off",
        description="duplicates across splits: keep, drop test images that duplicate training "
        "images, or move each duplicate group into one split",
    )
    near_threshold: int = Field(
        8, ge=0, le=63, description="pHash Hamming distance at or below which two images count as near duplicates"
    )
    cache: bool = Field(False, description="keep decoded images resized to img_size in a disk cache")


class AugmentConfig(_Section):
    """Training and evaluation transforms."""

    policy: str = Field("mri", description="registered augmentation policy")
    backend: Literal["pil", "tensor"] = Field(
        "pil",
        description="pil: timm's per-image PIL transforms; tensor: batched uint8 tensor augmentation "
        "of cached images (needs data.cache), on the GPU when training on one",
    )
    randaugment_magnitude: int = Field(9, ge=0, le=30, description="RandAugment magnitude")
    randaugment_num_ops: int = Field(2, ge=0, le=10, description="RandAugment operations per image")
    hflip: float = Field(0.5, ge=0.0, le=1.0, description="horizontal flip probability")
    scale: tuple[float, float] = Field((0.8, 1.0), description="random resized crop area range")
    mixup_alpha: float = Field(0.0, ge=0.0, description="Mixup alpha; 0 turns Mixup off")
    cutmix_alpha: float = Field(0.0, ge=0.0, description="CutMix alpha; 0 turns CutMix off")
    interpolation: Literal["bicubic", "bilinear", "nearest"] = "bicubic"
    crop_pct: float = Field(1.0, gt=0.0, le=1.0, description="evaluation centre-crop fraction")
    mean: tuple[float, float, float] = IMAGENET_DEFAULT_MEAN
    std: tuple[float, float, float] = IMAGENET_DEFAULT_STD


class OptimConfig(_Section):
    """Optimizer settings."""

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(5e-5, gt=0.0, le=10.0, description="peak learning rate")
    weight_decay: float = Field(0.05, ge=0.0, le=10.0)
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum")
    clip_grad_norm: float | None = Field(
        1.0, gt=0.0, description="clip the gradient norm to this value; null turns clipping off"
    )


class ScheduleConfig(_Section):
    """Learning-rate schedule, stepped once per optimizer step."""

    name: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0, description="linear warmup length in epochs")
    warmup_lr: float = Field(1e-6, ge=0.0, description="learning rate at the start of warmup")
    min_lr: float = Field(1e-6, ge=0.0, description="final learning rate of the cosine schedule")


class TrainConfig(_Section):
    """Training loop settings."""

    epochs: int = Field(10, ge=1, le=100_000)
    batch_size: int = Field(32, ge=1, le=65_536, description="batch size per process")
    grad_accum_steps: int = Field(1, ge=1, le=1024, description="micro-batches per optimizer step")
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    amp: Literal["auto", "bf16", "fp16", "off"] = Field(
        "auto", description="mixed precision: auto picks fp16 on CUDA and bf16 on CPUs with native bf16"
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    trainer: str = Field("default", description="registered trainer")
    early_stopping_patience: int | None = Field(
        10, ge=1, description="stop after this many epochs without a lower validation loss; null turns it off"
    )
    sync_bn: bool = Field(False, description="convert BatchNorm to SyncBatchNorm in DDP runs")
    channels_last: bool = Field(False, description="use the channels_last memory format")
    compile: bool = Field(False, description="wrap the model in torch.compile")
    eval_batch_size: int | None = Field(None, ge=1, description="defaults to batch_size")


class Recipe(_Section):
    """A complete, reproducible training recipe."""

    name: str = Field("run", description="run name; also the default run folder name under runs/")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    model: ModelConfig
    data: DataConfig = Field(default_factory=DataConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())


def _valid_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """List every dotted key the schema accepts, sections included."""
    keys = []
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_valid_keys(annotation, dotted + "."))
    return keys


VALID_KEYS = _valid_keys(Recipe)


def _closest_key(key: str) -> str | None:
    matches = difflib.get_close_matches(key, VALID_KEYS, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    # A misspelt section: compare the last part within the whole key list.
    leaf = key.rsplit(".", 1)[-1]
    for candidate in VALID_KEYS:
        if candidate.rsplit(".", 1)[-1] == leaf:
            return candidate
    return None


def _describe_error(error: dict[str, Any], source: str, overrides: dict[str, str]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    # Blame the --set option, not the file, for a value that came from the command line.
    for dotted, text in overrides.items():
        if key == dotted or key.startswith(dotted + "."):
            source = f"--set {text}"
    if error["type"] == "extra_forbidden":
        message = f"unknown key '{key}' in {source}"
        closest = _closest_key(key)
        if closest:
            message += f"; did you mean '{closest}'?"
        return message
    if error["type"] == "missing":
        return f"missing key '{key}' in {source}; add it to the recipe or pass --set {key}=VALUE"
    value = error.get("input")
    return f"invalid value {value!r} for '{key}' in {source}: {error['msg']}"


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``KEY=VALUE`` and parse VALUE as YAML (so 5e-5, true, null and [1, 2] work)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"invalid override {text!r}: expected KEY=VALUE, e.g. optim.lr=5e-5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise RecipeError(f"invalid value in override {text!r}: {error}") from None
    # YAML 1.1 reads "5e-5" (no dot in the mantissa) as a string; accept it as a float.
    if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
        value = float(value)
    return key, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides to a raw recipe mapping in place and return it."""
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        if key not in VALID_KEYS:
            closest = _closest_key(key)
            hint = f"; did you mean '{closest}'?" if closest else ""
            raise RecipeError(f"unknown key '{key}' in --set {text}{hint}")
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RecipeError(f"cannot set '{key}': '{part}' is not a section in the recipe")
            node = child
        node[parts[-1]] = value
    return data


def recipe_from_dict(data: dict[str, Any], source: str = "<recipe>", overrides: list[str] | None = None) -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(f"{source} must contain a YAML mapping with sections model, data, ...; got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as error:
        from_command_line = {parse_override(text)[0]: text for text in overrides or []}
        lines = [_describe_error(item, source, from_command_line) for item in error.errors()]
        raise RecipeError("\n".join(lines)) from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe YAML file, apply overrides and validate it."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise RecipeError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path} must contain a YAML mapping with sections model, data, ...")
    apply_overrides(data, overrides or [])
    return recipe_from_dict(data, str(path), overrides)


def reference_markdown() -> str:
    """Render every recipe key with its default and description as Markdown tables."""
    lines = []
    top = [(name, info) for name, info in Recipe.model_fields.items() if name in ("name", "seed")]
    sections = [(name, info) for name, info in Recipe.model_fields.items() if name not in ("name", "seed")]
    lines += ["| key | default | description |", "|---|---|---|"]
    for name, info in top:
        lines.append(f"| `{name}` | `{_default_text(info)}` | {info.description or ''} |")
    for section, info in sections:
        model = info.annotation
        lines += ["", f"`{section}`: {model.__doc__.strip()}", "", "| key | default | description |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            lines.append(f"| `{section}.{name}` | `{_default_text(field)}` | {_describe_field(field)} |")
    return "\n".join(lines) + "\n"


def _default_text(field) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, tuple):
        value = list(value)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _describe_field(field) -> str:
    text = field.description or ""
    choices = getattr(field.annotation, "__args__", None)
    if getattr(field.annotation, "__origin__", None) is Literal and choices:
        text = (text + "; " if text else "") + "one of " + ", ".join(f"`{c}`" for c in choices)
    bounds = [f"{symbol} {getattr(m, attr)}" for m in field.metadata
              for attr, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")) if hasattr(m, attr)]
    if bounds:
        text += f" ({', '.join(bounds)})"
    return text
