"""Save, load, publish and run models in Hugging Face Hub layout.

An exported model is a folder with ``model.safetensors``, a timm-style
``config.json`` and a model card ``README.md``. With the plugin that registers
the architecture imported, ``timm.create_model("local-dir:DIR",
pretrained=True)`` and ``timm.create_model("hf-hub:ORG/NAME", pretrained=True)``
rebuild it, because config.json carries the keys that timm's
``load_model_config_from_path`` / ``load_model_config_from_hf`` read:
``architecture``, ``num_classes``, ``label_names``, ``model_args`` and
``pretrained_cfg`` (checked against timm 1.0.31). Extra zoo facts (the
recipe) sit under ``brain_zoo``, which timm ignores.

:func:`load_model` is the one loading path of ``zoo eval`` and ``zoo
predict``. It takes a run folder, a checkpoint folder, a Hub-layout folder or
``hf-hub:ORG/NAME[@REVISION]``, reads safetensors only unless pickles are
allowed explicitly, and builds the model on the CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from zoo_core.models import (
    WeightsError,
    download_hub_file,
    hub_offline,
    read_state_dict,
    split_hub_id,
)
from zoo_core.train import checkpoint as ckpt

logger = logging.getLogger(__name__)

__all__ = [
    "HUB_PREFIX",
    "HubError",
    "LoadedModel",
    "PushResult",
    "build_hub_config",
    "card_was_edited",
    "export_run",
    "load_model",
    "predict_images",
    "push_run",
    "render_model_card",
]

HUB_PREFIX = "hf-hub:"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
PICKLE_WEIGHTS_FILES = ("pytorch_model.bin", "pytorch_model.pth", "model.pth")
# The last line of a generated card stores the SHA-256 of the text above it, so
# a re-push can tell a card edited on the Hub from the one the zoo wrote.
CARD_HASH_PREFIX = "<!-- brain-zoo card sha256:"
DEFAULT_LICENSE = "apache-2.0"
KAGGLE_DATASET = "masoudnickparvar/brain-tumor-mri-dataset"
KAGGLE_URL = "https://www.kaggle.com/datasets/masoudnickparvar/brain-tumor-mri-dataset"


class HubError(ValueError):
    """A model source, export or push that failed. The message names the value and the fix.

    It is a ValueError, so commands that report invalid input without a traceback report it too.
    """


@dataclass
class LoadedModel:
    """A model in eval mode on the CPU together with the facts needed to run it."""

    model: torch.nn.Module
    architecture: str
    class_names: list[str]
    preprocessing: dict[str, Any]
    source: str
    model_args: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def state(self) -> dict[str, Any]:
        """Return the model facts with the key names of a checkpoint's trainer_state.json."""
        return {
            "architecture": self.architecture,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "img_size": self.preprocessing["input_size"][-1],
            "preprocessing": dict(self.preprocessing),
            "recipe": self.recipe,
        }


# ----- building a model from its facts -----------------------------------------------------


def _build_model(architecture: str, num_classes: int, model_args: dict[str, Any]) -> torch.nn.Module:
    """Create the timm architecture, naming the plugin to install when it is unknown."""
    import timm

    from zoo_core.plugins import get_model_spec, get_registries
    from zoo_core.registry import UnknownNameError

    get_registries()  # imports the plugins, which register their architectures in timm
    if not timm.is_model(architecture):
        try:
            get_model_spec(architecture)
        except UnknownNameError as error:
            raise HubError(str(error)) from None
        raise HubError(f"architecture {architecture!r} is not registered in timm; install the plugin that adds it")
    return timm.create_model(architecture, pretrained=False, num_classes=num_classes, **model_args)


def _load_exact(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load a state_dict that must match the model key for key and shape for shape."""
    target = model.state_dict()
    missing = sorted(set(target) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(target))
    wrong_shape = [f"{key}: file {tuple(state_dict[key].shape)}, model {tuple(target[key].shape)}"
                   for key in target if key in state_dict and state_dict[key].shape != target[key].shape]
    if missing or unexpected or wrong_shape:
        details = [f"missing {', '.join(missing[:3])}" if missing else "",
                   f"unexpected {', '.join(unexpected[:3])}" if unexpected else "",
                   f"other shapes {'; '.join(wrong_shape[:3])}" if wrong_shape else ""]
        raise HubError(
            f"the weights of {source} do not match {type(model).__name__} as its config describes it "
            f"({'; '.join(d for d in details if d)}); the folder may mix files of two models"
        )
    model.load_state_dict(state_dict)


def _assemble(architecture, class_names, preprocessing, model_args, state_dict, source, recipe=None) -> LoadedModel:
    model = _build_model(architecture, len(class_names), model_args)
    _load_exact(model, state_dict, source)
    model.eval()
    return LoadedModel(model, architecture, list(class_names), dict(preprocessing), source, dict(model_args), recipe)


# ----- the sources load_model accepts ------------------------------------------------------


def _load_checkpoint_folder(folder: Path, source: str) -> LoadedModel:
    state = ckpt.load_trainer_state(folder)
    folder = ckpt.resolve_checkpoint(folder)
    state_dict = read_state_dict(folder / ckpt.MODEL_FILE, allow_pickle=False)
    recipe = state.get("recipe") or {}
    model_args = (recipe.get("model") or {}).get("kwargs") or {}
    return _assemble(state["architecture"], state["class_names"], state["preprocessing"], model_args,
                     state_dict, source, recipe)


def _config_facts(config: dict[str, Any], source: str) -> tuple[str, list[str], dict[str, Any], dict[str, Any]]:
    """Return architecture, class names, preprocessing and model_args from a config.json."""
    try:
        architecture = config["architecture"]
        pretrained_cfg = config.get("pretrained_cfg") or {}
        num_classes = int(config.get("num_classes") or pretrained_cfg["num_classes"])
    except (KeyError, TypeError, ValueError) as error:
        raise HubError(f"{source} has no valid {CONFIG_FILE}: missing or invalid key {error}") from None

    class_names = list(config.get("label_names") or pretrained_cfg.get("label_names") or [])
    if not class_names:
        class_names = [f"class_{index}" for index in range(num_classes)]
    if len(class_names) != num_classes:
        raise HubError(f"{source}: {CONFIG_FILE} names {len(class_names)} labels but num_classes is {num_classes}")

    preprocessing = {
        "input_size": list(pretrained_cfg.get("input_size", (3, 224, 224))),
        "interpolation": pretrained_cfg.get("interpolation", "bicubic"),
        "crop_pct": pretrained_cfg.get("crop_pct", 0.875),
        "crop_mode": pretrained_cfg.get("crop_mode", "center"),
        "mean": list(pretrained_cfg.get("mean", (0.485, 0.456, 0.406))),
        "std": list(pretrained_cfg.get("std", (0.229, 0.224, 0.225))),
    }
    return architecture, class_names, preprocessing, dict(config.get("model_args") or {})


def _read_config(path: Path, source: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise HubError(f"cannot read {path} of {source}: {error}") from None


def _load_hub_folder(folder: Path, allow_pickle: bool) -> LoadedModel:
    source = str(folder)
    config = _read_config(folder / CONFIG_FILE, source)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        pickles = [folder / name for name in PICKLE_WEIGHTS_FILES if (folder / name).is_file()]
        if not pickles:
            raise HubError(f"{folder} has {CONFIG_FILE} but no {WEIGHTS_FILE}")
        weights = pickles[0]
    state_dict = read_state_dict(weights, allow_pickle=allow_pickle)
    architecture, class_names, preprocessing, model_args = _config_facts(config, source)
    recipe = (config.get("brain_zoo") or {}).get("recipe")
    return _assemble(architecture, class_names, preprocessing, model_args, state_dict, source, recipe)


def _load_hub_id(hub_id: str, allow_pickle: bool) -> LoadedModel:
    from huggingface_hub.errors import EntryNotFoundError

    repo_id, revision = split_hub_id(hub_id)
    source = HUB_PREFIX + hub_id
    try:
        config_path = download_hub_file(repo_id, CONFIG_FILE, revision)
    except EntryNotFoundError:
        raise HubError(f"{source} has no {CONFIG_FILE}, so it is not a timm or brain-zoo model repository") from None
    config = _read_config(config_path, source)

    weights = None
    errors = {}
    candidates = (WEIGHTS_FILE, *PICKLE_WEIGHTS_FILES) if allow_pickle else (WEIGHTS_FILE,)
    for filename in candidates:
        try:
            weights = download_hub_file(repo_id, filename, revision)
            break
        except (EntryNotFoundError, WeightsError) as error:
            errors[filename] = error
    if weights is None:
        where = " in the local cache" if hub_offline() else ""
        hint = "" if allow_pickle else (
            f" Only safetensors weights are loaded by default; if the repository has a pickle checkpoint "
            f"({', '.join(PICKLE_WEIGHTS_FILES)}) that you trust, pass --allow-pickle."
        )
        raise HubError(f"{source} has no {' or '.join(candidates)}{where} ({errors[WEIGHTS_FILE]}).{hint}")

    state_dict = read_state_dict(weights, allow_pickle=allow_pickle)
    architecture, class_names, preprocessing, model_args = _config_facts(config, source)
    recipe = (config.get("brain_zoo") or {}).get("recipe")
    return _assemble(architecture, class_names, preprocessing, model_args, state_dict, source, recipe)


def load_model(source: str | Path, checkpoint: str = "best", allow_pickle: bool = False) -> LoadedModel:
    """Load a model from a run folder, a checkpoint folder, a Hub-layout folder or ``hf-hub:ORG/NAME``.

    ``checkpoint`` ('best' or 'last') applies to run folders only.
    ``allow_pickle`` permits a ``.bin`` / ``.pth`` file when no safetensors
    file exists; it is read with ``torch.load(weights_only=True)``.
    Raises :class:`HubError` with the fix when the source cannot be loaded.
    """
    text = str(source)
    try:
        if text.startswith(HUB_PREFIX):
            return _load_hub_id(text[len(HUB_PREFIX):], allow_pickle)

        folder = Path(text).expanduser()
        if not folder.is_dir():
            hint = f"; for a Hub model write {HUB_PREFIX}{text}" if text.count("/") == 1 and not folder.exists() else ""
            raise HubError(f"model source {text!r} is not a folder{hint}")
        if (folder / "checkpoints").is_dir():
            return _load_checkpoint_folder(folder / "checkpoints" / checkpoint, f"{folder} ({checkpoint} checkpoint)")
        if (folder / ckpt.STATE_FILE).is_file():
            return _load_checkpoint_folder(folder, str(folder))
        if (folder / CONFIG_FILE).is_file():
            return _load_hub_folder(folder, allow_pickle)
        raise HubError(
            f"{folder} is neither a run folder (checkpoints/), a checkpoint folder ({ckpt.STATE_FILE}) "
            f"nor a Hub-layout folder ({CONFIG_FILE} and {WEIGHTS_FILE}); pass one of these or {HUB_PREFIX}ORG/NAME"
        )
    except (WeightsError, ckpt.CheckpointError) as error:
        raise HubError(str(error)) from None


# ----- export -------------------------------------------------------------------------------


def build_hub_config(model: torch.nn.Module, state: dict[str, Any]) -> dict[str, Any]:
    """Return the config.json of an exported model from its checkpoint's trainer state."""
    recipe = state.get("recipe") or {}
    model_args = dict((recipe.get("model") or {}).get("kwargs") or {})
    preprocessing = state["preprocessing"]
    source_cfg = getattr(model, "pretrained_cfg", None) or {}

    pretrained_cfg = {
        "tag": "brain_zoo",
        "custom_load": False,
        "input_size": list(preprocessing["input_size"]),
        "fixed_input_size": bool(source_cfg.get("fixed_input_size", False)),
        "interpolation": preprocessing["interpolation"],
        "crop_pct": preprocessing["crop_pct"],
        "crop_mode": preprocessing.get("crop_mode", "center"),
        "mean": list(preprocessing["mean"]),
        "std": list(preprocessing["std"]),
        "num_classes": state["num_classes"],
        "first_conv": source_cfg.get("first_conv"),
        "classifier": source_cfg.get("classifier"),
    }
    config = {
        "architecture": state["architecture"],
        "num_classes": state["num_classes"],
        "num_features": getattr(model, "num_features", None),
        "label_names": list(state["class_names"]),
        "model_args": model_args,
        "pretrained_cfg": pretrained_cfg,
        "brain_zoo": {"format_version": 1, "recipe": recipe},
    }
    if config["num_features"] is None:
        del config["num_features"]
    return config


def _write_text_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def export_run(run_dir: str | Path, out_dir: str | Path, checkpoint: str = "best",
               repo_id: str | None = None, license: str | None = None) -> Path:
    """Write the run's checkpoint in Hub layout (weights, config.json, README.md) into ``out_dir``."""
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    folder = run_dir / "checkpoints" / checkpoint
    if not (run_dir / "checkpoints").is_dir():
        raise HubError(f"{run_dir} is not a run folder (no checkpoints/); pass the folder given to zoo train --output")
    try:
        state = ckpt.load_trainer_state(folder)
    except ckpt.CheckpointError as error:
        raise HubError(str(error)) from None
    loaded = load_model(run_dir, checkpoint=checkpoint)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_dict = {key: tensor.contiguous() for key, tensor in loaded.model.state_dict().items()}
    temporary = out_dir / f".{WEIGHTS_FILE}.tmp"
    save_file(state_dict, temporary, metadata={"format": "pt"})
    os.replace(temporary, out_dir / WEIGHTS_FILE)

    config = build_hub_config(loaded.model, state)
    _write_text_atomic(out_dir / CONFIG_FILE, json.dumps(config, indent=2) + "\n")

    summary = _read_optional_json(run_dir / "summary.json")
    card = render_model_card(state, summary, loaded.model, repo_id=repo_id, license=license,
                             checkpoint=checkpoint)
    _write_text_atomic(out_dir / CARD_FILE, card)
    logger.debug("exported %s (%s checkpoint) to %s", run_dir, checkpoint, out_dir)
    return out_dir


def _read_optional_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        logger.warning("ignoring unreadable %s: %s", path, error)
        return None


# ----- model card ---------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _interval(values: Sequence[float] | None) -> str:
    if not values or values[0] is None:
        return ""
    return f" ({100 * values[0]:.1f}–{100 * values[1]:.1f})"


def _rounded(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _dataset_facts(summary: dict[str, Any] | None, recipe: dict[str, Any]) -> tuple[str, str]:
    """Return the dataset id for the card metadata and a sentence about it."""
    name = ((summary or {}).get("data") or {}).get("name") or (recipe.get("data") or {}).get("name", "unknown")
    if name == "kaggle":
        return KAGGLE_DATASET, f"the Kaggle Brain Tumor MRI Dataset (Masoud Nickparvar, CC0; {KAGGLE_URL})"
    if name == "sample":
        return KAGGLE_DATASET, (f"the 17-image sample of the Kaggle Brain Tumor MRI Dataset bundled with brain-zoo "
                                "(too few images to measure accuracy)")
    if name == "phantom":
        return "brain-zoo-phantom", ("brain-zoo's procedural phantom images (synthetic; the results say nothing "
                                     "about real MRI)")
    return name, f"the dataset {name!r}"


def _metrics_section(summary: dict[str, Any] | None) -> list[str]:
    if not summary or not summary.get("test"):
        return ["No test metrics were recorded for this run (summary.json is missing).", ""]
    lines = [
        "| split | images | top-1 (95% CI) | balanced accuracy | macro F1 (95% CI) | ECE |",
        "|---|---|---|---|---|---|",
    ]
    for key in ("test", "val"):
        report = summary.get(key)
        if not report:
            continue
        lines.append(
            f"| {report.get('split', key)} | {report.get('num_images', 'n/a')} "
            f"| {_percent(report.get('top1'))}{_interval(report.get('top1_ci'))} "
            f"| {_percent(report.get('balanced_accuracy'))} "
            f"| {_percent(report.get('macro_f1'))}{_interval(report.get('macro_f1_ci'))} "
            f"| {report.get('ece', float('nan')):.3f} |"
        )
    settings = summary["test"].get("settings") or {}
    lines += ["", f"Intervals: {settings.get('interval_method', 'bootstrap')}, "
              f"{settings.get('bootstrap_resamples', 'n/a')} resamples. The validation split chose the "
              "checkpoint (lowest validation loss); the test split was used once, at the end.", ""]

    per_class = summary["test"].get("per_class") or {}
    if per_class:
        lines += ["Per class on the test split:", "", "| class | images | precision | recall | F1 |",
                  "|---|---|---|---|---|"]
        for name, scores in per_class.items():
            lines.append(f"| {name} | {scores.get('support')} | {_percent(scores.get('precision'))} "
                         f"| {_percent(scores.get('recall'))} | {_percent(scores.get('f1'))} |")
        lines.append("")
    return lines


def _base_model(pretrained: str | None, model: torch.nn.Module) -> str | None:
    """Return the Hub id of the initial weights for the card's base_model field, when they have one."""
    if pretrained == "default":
        return (getattr(model, "pretrained_cfg", None) or {}).get("hf_hub_id")
    if pretrained and pretrained.startswith(HUB_PREFIX):
        return pretrained[len(HUB_PREFIX):].partition("@")[0]
    return None


def _card_metadata(state, summary, model_name, repo_id, license, dataset_id, base_model) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    recipe = state.get("recipe") or {}
    test = (summary or {}).get("test") or {}
    eval_results = None
    # Only a run on the full dataset reports Hub evaluation results: the bundled sample's
    # four test images and the synthetic phantom would read as benchmark figures.
    data_name = ((summary or {}).get("data") or {}).get("name")
    if test.get("top1") is not None and data_name == "kaggle":
        eval_results = [
            EvalResult(task_type="image-classification", dataset_type=dataset_id, dataset_name=dataset_id,
                       dataset_split="test", metric_type=metric_type, metric_name=metric_name,
                       metric_value=round(float(test[key]), 4))
            for key, metric_type, metric_name in (("top1", "accuracy", "top-1 accuracy"),
                                                  ("macro_f1", "f1", "macro F1"))
            if test.get(key) is not None
        ]
    data = ModelCardData(
        library_name="timm",
        license=license,
        tags=["image-classification", "timm", "brain-zoo", "medical-imaging", "brain-mri",
              state["architecture"]],
        datasets=[dataset_id],
        metrics=["accuracy", "f1"],
        pipeline_tag="image-classification",
        base_model=base_model,
        model_name=repo_id or model_name,
        eval_results=eval_results,
    )
    return data.to_yaml()


def render_model_card(state: dict[str, Any], summary: dict[str, Any] | None, model: torch.nn.Module,
                      repo_id: str | None = None, license: str | None = None, checkpoint: str = "best") -> str:
    """Return the README.md model card for an exported run, ending in its hash line."""
    import yaml

    from zoo_core.plugins import get_registries

    recipe = state.get("recipe") or {}
    architecture = state["architecture"]
    spec = get_registries().models.get(architecture) if architecture in get_registries().models else None
    pretrained_license = (getattr(model, "pretrained_cfg", None) or {}).get("license")
    if license is None and (recipe.get("model") or {}).get("pretrained") and pretrained_license:
        license = pretrained_license  # fine-tuned weights inherit the licence of the weights they start from
    license = license or DEFAULT_LICENSE
    dataset_id, dataset_text = _dataset_facts(summary, recipe)
    model_name = f"{architecture}-brain-mri"
    title = repo_id or model_name
    params = sum(p.numel() for p in model.parameters())
    input_size = state["preprocessing"]["input_size"]
    pretrained = (recipe.get("model") or {}).get("pretrained")
    summary = summary or {}
    hardware = summary.get("hardware") or {}
    versions = summary.get("versions") or {}
    load_id = f"hf-hub:{repo_id}" if repo_id else "local-dir:PATH/TO/THIS/FOLDER"
    plugin_module = registering_module(architecture)

    lines = [
        "---",
        _card_metadata(state, summary, model_name, repo_id, license, dataset_id,
                       _base_model(pretrained, model)).rstrip(),
        "---",
        "",
        f"# {title}",
        "",
        "> **Research model, not a medical device.** It has not been clinically validated or approved by "
        "any regulator. Do not use it to diagnose, treat or triage patients.",
        "",
        f"An image classifier ({architecture}) for brain-tumour MRI slices, trained with brain-zoo "
        f"on {dataset_text}.",
        "",
        "## Model",
        "",
        f"- Architecture: `{architecture}`" + (f" ({spec.family}; {spec.paper})" if spec and spec.paper else ""),
        f"- Parameters: {params:,}",
        f"- Input: {input_size[0]} x {input_size[1]} x {input_size[2]} (channels x height x width), "
        f"{state['preprocessing']['interpolation']} resize, crop_pct {state['preprocessing']['crop_pct']}, "
        f"mean {list(state['preprocessing']['mean'])}, std {list(state['preprocessing']['std'])}",
        f"- Classes, in output order: {', '.join(f'{i} {name}' for i, name in enumerate(state['class_names']))}",
        f"- Initial weights: {pretrained or 'random initialisation'}",
        f"- Checkpoint: {checkpoint} (epoch {state.get('epoch', 'n/a')}, "
        f"validation loss {_rounded(state.get('best_val_loss'))})",
        "",
        "## Results",
        "",
        *_metrics_section(summary),
        "## Training",
        "",
        f"- Training time: {_duration(summary.get('train_time_s', state.get('train_time_s')))} "
        f"({summary.get('epochs_run', state.get('epoch', 'n/a'))} epochs, best epoch "
        f"{summary.get('best_epoch', state.get('best_epoch', 'n/a'))})",
        f"- Hardware: {hardware.get('cuda_device') or 'CPU only'}; CPU {hardware.get('cpu', 'not recorded')}"
        f" x {hardware.get('cpu_count', '?')}; device {summary.get('device', 'not recorded')}, "
        f"{summary.get('world_size', 1)} process(es)",
        f"- Software: " + (", ".join(f"{k} {v}" for k, v in versions.items() if not isinstance(v, dict))
                           or "not recorded"),
        "",
        "Recipe (save it as recipe.yaml and run `zoo train recipe.yaml` to train again):",
        "",
        "```yaml",
        yaml.safe_dump(recipe, sort_keys=False).rstrip(),
        "```",
        "",
        "## Intended use and limitations",
        "",
        "- Intended for research on and teaching of image classification of 2-D brain MRI slices into "
        "the four classes above, and for comparing architectures under one protocol.",
        "- Not intended for clinical use. The training data are single slices from public collections "
        "of unknown scanners and protocols; performance on other hospitals, sequences or 3-D volumes "
        "is unknown, and an image of none of the four classes still receives one of them.",
        "- The reported numbers come from one run and one test split; read them with their intervals.",
        "",
        "## How to use",
        "",
        "```python",
        "import timm",
        *([f"import {plugin_module}  # registers {architecture} in timm"] if plugin_module else []),
        "",
        f'model = timm.create_model("{load_id}", pretrained=True).eval()',
        "```",
        "",
        "or, with brain-zoo installed: `zoo predict " + (f"hf-hub:{repo_id}" if repo_id else "PATH") + " IMAGE...`",
        "",
    ]
    body = "\n".join(lines)
    return body + f"{CARD_HASH_PREFIX}{_sha256(body)} -->\n"


def registering_module(architecture: str) -> str | None:
    """Return the top-level package that registers ``architecture`` in timm, or None for timm's own."""
    import timm

    if not timm.is_model(architecture):
        return None
    module = timm.models.model_entrypoint(architecture).__module__
    return None if module.startswith("timm.") else module.partition(".")[0]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def card_was_edited(card: str) -> bool:
    """Return True unless ``card`` is a zoo-generated card left as it was written."""
    body, marker, rest = card.rpartition(CARD_HASH_PREFIX)
    if not marker:
        return True
    return rest.strip().removesuffix("-->").strip() != _sha256(body)


# ----- push ---------------------------------------------------------------------------------


@dataclass
class PushResult:
    """Result of a push: the commit, the uploaded files and whether the remote card was kept."""

    repo_id: str
    commit_url: str
    commit_oid: str | None
    files: list[str]
    card_kept: bool


def _resolve_token(token: str | None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubError(
            "no Hugging Face token found: set HF_TOKEN to a token with write access "
            "(https://huggingface.co/settings/tokens) or log in once with `hf auth login`"
        )
    return token


def _fetch_remote_card(api, repo_id: str, revision: str | None, folder: Path) -> str | None:
    """Return the README.md on the Hub, or None when the repository has none yet."""
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    try:
        path = api.hf_hub_download(repo_id, CARD_FILE, revision=revision, local_dir=folder)
    except (EntryNotFoundError, RevisionNotFoundError):
        return None
    return Path(path).read_text(encoding="utf-8")


def push_run(run_dir: str | Path, repo_id: str, private: bool = False, revision: str | None = None,
             overwrite_card: bool = False, token: str | None = None, checkpoint: str = "best",
             commit_message: str | None = None, license: str | None = None) -> PushResult:
    """Export the run and upload it to the Hub model repository ``repo_id`` as one new commit.

    The repository and the branch ``revision`` are created when missing. A
    model card on the Hub that was edited after the zoo wrote it is kept
    unless ``overwrite_card`` is true.
    """
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or "@" in repo_id:
        raise HubError(
            f"invalid Hugging Face model id {repo_id!r}: pass --repo-id ORG/NAME, e.g. my-lab/rdnet-tiny-brain-mri"
        )
    token = _resolve_token(token)
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as temporary:
        export_dir = export_run(run_dir, Path(temporary) / "export", checkpoint=checkpoint, repo_id=repo_id,
                                license=license)
        try:
            api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
            if revision:
                api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
            card_kept = False
            if not overwrite_card:
                remote_card = _fetch_remote_card(api, repo_id, revision, Path(temporary) / "remote")
                card_kept = remote_card is not None and card_was_edited(remote_card)
            if card_kept:
                logger.warning("kept the model card on the Hub because it was edited there; "
                               "pass --overwrite-card to replace it")
            files = [WEIGHTS_FILE, CONFIG_FILE] + ([] if card_kept else [CARD_FILE])
            operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(export_dir / name))
                          for name in files]
            message = commit_message or _commit_message(run_dir, checkpoint)
            info = api.create_commit(repo_id, operations=operations, commit_message=message,
                                     revision=revision, repo_type="model")
        except HfHubHTTPError as error:
            raise HubError(f"pushing to Hugging Face repository {repo_id!r} failed: {error}") from None
    return PushResult(repo_id, str(info.commit_url), getattr(info, "oid", None), files, card_kept)


def _commit_message(run_dir: str | Path, checkpoint: str) -> str:
    summary = _read_optional_json(Path(run_dir) / "summary.json") or {}
    test = summary.get("test") or {}
    name = summary.get("recipe_name") or Path(run_dir).name
    if test.get("top1") is None:
        return f"Upload {checkpoint} checkpoint of brain-zoo run {name}"
    return (f"Upload {checkpoint} checkpoint of brain-zoo run {name} "
            f"(test top-1 {100 * test['top1']:.2f}% on {test.get('num_images')} images)")


# ----- prediction ---------------------------------------------------------------------------


@torch.no_grad()
def predict_images(loaded: LoadedModel, paths: Sequence[str | Path], batch_size: int = 16):
    """Classify image files, and the images inside folders, with the model's own preprocessing.

    Returns ``(predictions, errors)``: one dict per readable image (``image``,
    ``label``, ``probs`` by class name, ``logits``) in input order, and one
    :class:`~zoo_core.data.images.ImageLoadError` per unreadable file, missing
    path or folder without images.
    """
    from zoo_core.data.images import ImageLoadError, collect_image_files, load_image
    from zoo_core.train.evaluation import eval_transform_from_preprocessing

    transform = eval_transform_from_preprocessing(loaded.preprocessing)
    files, tensors, names, errors = [], [], [], []
    for item in paths:
        try:
            found = collect_image_files([item])
        except ImageLoadError as error:
            errors.append(error)
            continue
        if not found:
            errors.append(ImageLoadError(item, "folder contains no image files"))
        files.extend(found)

    for path in files:
        try:
            tensors.append(transform(load_image(path)))
            names.append(str(path))
        except ImageLoadError as error:
            errors.append(error)

    predictions = []
    for start in range(0, len(tensors), batch_size):
        logits = loaded.model(torch.stack(tensors[start:start + batch_size])).float()
        probs = torch.softmax(logits, dim=1)
        for offset in range(logits.shape[0]):
            row = probs[offset].tolist()
            predictions.append({
                "image": names[start + offset],
                "label": loaded.class_names[int(probs[offset].argmax())],
                "probs": dict(zip(loaded.class_names, row)),
                "logits": logits[offset].tolist(),
            })
    return predictions, errors
