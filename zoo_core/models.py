"""Model creation through the zoo registry and timm, with pretrained initialisation.

A recipe's ``model.pretrained`` names the weights a run starts from: ``default``
(the architecture's own ImageNet weights from its timm ``default_cfgs``, e.g.
``naver-ai/rdnet_tiny.nv_in1k``), ``hf-hub:ORG/NAME[@REVISION]``, an https URL
or a local ``.safetensors`` / ``.pth`` file. All of them go through one path:
the file is fetched (Hugging Face cache or torch hub cache), read on the CPU
(pickles only with ``torch.load(weights_only=True)``), unwrapped from training
containers and ``module.`` prefixes, passed through the architecture's
``checkpoint_filter_fn`` and loaded. A classifier head of another size is
replaced by a new one with a logged warning; any other mismatch raises.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from zoo_core.plugins import get_model_spec

logger = logging.getLogger(__name__)

SAFETENSORS_SUFFIXES = (".safetensors",)
# Keys under which training scripts store the model's state_dict, in the order
# they are tried. EMA weights are used only when no plain weights exist, as in timm.
STATE_DICT_CONTAINER_KEYS = ("state_dict", "model", "module", "state_dict_ema", "model_ema")
# Prefixes added by DataParallel / DistributedDataParallel and torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class ModelConfigError(ValueError):
    """A model setting in a recipe that cannot be honoured."""


class WeightsError(RuntimeError):
    """Weights that cannot be fetched, read or loaded into the model."""


def check_img_size(model_name: str, img_size: int | tuple[int, int]) -> None:
    """Raise ModelConfigError when the model cannot run at ``img_size``."""
    spec = get_model_spec(model_name)
    height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
    if spec.check_img_size is None:
        return
    try:
        spec.check_img_size(height, width)
    except ValueError as error:
        nearest = _nearest_supported_sizes(spec.check_img_size, height)
        hint = ""
        if len(nearest) == 1:
            hint = f"; the nearest supported square size is {nearest[0]}"
        elif nearest:
            hint = f"; the nearest supported square sizes are {nearest[0]} and {nearest[1]}"
        raise ModelConfigError(f"{model_name}: {error}{hint} (set data.img_size, e.g. --set data.img_size=N)") from None


def _nearest_supported_sizes(check, size: int, span: int = 512) -> list[int]:
    """Return the closest square sizes below and above ``size`` that ``check`` accepts."""
    found = []
    for candidates in (range(size - 1, max(size - span, 0), -1), range(size + 1, size + span)):
        for candidate in candidates:
            try:
                check(candidate, candidate)
            except ValueError:
                continue
            found.append(candidate)
            break
    return found


# ----- Hugging Face cache and offline mode ------------------------------------------------


def hub_offline() -> bool:
    """Return True when HF_HUB_OFFLINE is set now, even if huggingface_hub was imported before."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "")
    return value.upper() in ("1", "ON", "YES", "TRUE") or constants.HF_HUB_OFFLINE


def hub_cache_dir() -> Path:
    """Return the Hugging Face hub cache that HF_HUB_CACHE or HF_HOME names now."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def split_hub_id(hub_id: str) -> tuple[str, str | None]:
    """Split ``ORG/NAME[@REVISION]`` into the repository id and the revision."""
    repo_id, _, revision = hub_id.partition("@")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or "@" in revision:
        raise WeightsError(
            f"invalid Hugging Face model id {hub_id!r}: expected ORG/NAME or ORG/NAME@REVISION, "
            "e.g. hf-hub:naver-ai/rdnet_tiny.nv_in1k"
        )
    return repo_id, revision or None


def offline_help(resource: str, repo_id: str = "ORG/NAME") -> str:
    """Return the advice for a Hub file that is missing from the cache while offline."""
    return (
        f"{resource} is not in the Hugging Face cache at {hub_cache_dir()} and there is no network access"
        f"{' (HF_HUB_OFFLINE=1)' if hub_offline() else ''}. Download it once on a connected machine with "
        f"`hf download {repo_id}` (huggingface_hub) and copy the cache folder here, or point HF_HOME / "
        "HF_HUB_CACHE at a copied cache, or pass a local folder or file instead. On a machine without "
        "network access, set HF_HUB_OFFLINE=1 so this check fails at once instead of retrying"
    )


def download_hub_file(repo_id: str, filename: str, revision: str | None = None) -> Path:
    """Fetch one file of a Hub model repository through the Hugging Face cache.

    With HF_HUB_OFFLINE set only the cache is read, so no request is sent.
    Raises ``huggingface_hub.errors.EntryNotFoundError`` when the repository
    has no such file and :class:`WeightsError` for every other failure.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    label = f"hf-hub:{repo_id}{'@' + revision if revision else ''} file {filename}"
    try:
        path = hf_hub_download(repo_id, filename, revision=revision, cache_dir=hub_cache_dir(),
                               local_files_only=hub_offline())
    except LocalEntryNotFoundError:
        raise WeightsError(offline_help(label, repo_id)) from None
    except RepositoryNotFoundError:
        raise WeightsError(
            f"Hugging Face model repository {repo_id!r} was not found, or it is private and no token "
            "with access is set (HF_TOKEN or `hf auth login`)"
        ) from None
    except RevisionNotFoundError:
        raise WeightsError(f"revision {revision!r} does not exist in Hugging Face repository {repo_id!r}") from None
    except EntryNotFoundError:
        raise
    except (HfHubHTTPError, OSError) as error:
        raise WeightsError(f"could not download {label}: {error}. {offline_help(label, repo_id)}") from error
    return Path(path)


def download_url(url: str) -> Path:
    """Fetch an https checkpoint into torch hub's cache, reusing a cached copy."""
    from urllib.error import URLError

    name = Path(urlparse(url).path).name
    if not name:
        raise WeightsError(f"URL {url!r} does not end in a file name; give the URL of a .pth or .safetensors file")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    if cached.is_file():
        return cached
    if hub_offline():
        raise WeightsError(
            f"{url} is not in the torch hub cache ({cached}) and HF_HUB_OFFLINE=1 forbids downloads. "
            "Download it on a connected machine and set model.pretrained to the local file"
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s to %s", url, cached)
    try:
        torch.hub.download_url_to_file(url, str(cached), progress=True)
    except (URLError, OSError) as error:
        raise WeightsError(
            f"could not download {url}: {error}. Without network access, download it elsewhere and set "
            "model.pretrained to the local file"
        ) from error
    return cached


# ----- reading state dicts ---------------------------------------------------------------


def clean_state_dict(checkpoint: Any, source: str) -> dict[str, torch.Tensor]:
    """Return the model state_dict inside ``checkpoint`` with wrapper prefixes removed."""
    state_dict = checkpoint
    while isinstance(state_dict, dict):
        container = next((key for key in STATE_DICT_CONTAINER_KEYS
                          if isinstance(state_dict.get(key), dict)), None)
        if container is None:
            break
        state_dict = state_dict[container]
    if not isinstance(state_dict, dict) or not any(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise WeightsError(f"{source} contains no model state_dict (a mapping of parameter names to tensors)")

    cleaned = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            continue
        for prefix in WRAPPER_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        cleaned[key] = value.to("cpu")
    return cleaned


def read_state_dict(path: str | Path, allow_pickle: bool = True) -> dict[str, torch.Tensor]:
    """Read a checkpoint file onto the CPU and return its cleaned state_dict.

    Safetensors files are always read. Pickle files (``.pth`` and similar) are
    read only when ``allow_pickle`` is true, and then with
    ``torch.load(weights_only=True)``, which restores tensors and plain
    containers but runs no code from the file. Tensors saved on a GPU are
    mapped to the CPU.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint file {path} does not exist")
    if path.name.endswith(SAFETENSORS_SUFFIXES):
        try:
            return clean_state_dict(load_file(path, device="cpu"), str(path))
        except SafetensorError as error:
            raise WeightsError(f"cannot read {path} as safetensors: {error}") from None

    if not allow_pickle:
        raise WeightsError(
            f"{path} is a pickle checkpoint, which is not loaded by default because pickle files can run "
            "code. Convert it to safetensors, or pass --allow-pickle if you trust it (it is then read "
            "with torch.load(weights_only=True))"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise WeightsError(
            f"{path} contains objects other than tensors and plain containers, so torch.load("
            f"weights_only=True) rejected it: {error}. Re-save its state_dict alone with torch.save"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise WeightsError(f"cannot read {path} as a PyTorch checkpoint: {error}") from None
    return clean_state_dict(checkpoint, str(path))


# ----- loading into a model --------------------------------------------------------------


def checkpoint_filter(model: torch.nn.Module):
    """Return the ``checkpoint_filter_fn`` of the model's timm module, or None.

    timm model files, and the zoo's plugins that follow their layout, define
    ``checkpoint_filter_fn(state_dict, model)`` next to the model class to map
    official checkpoints onto the timm module names.
    """
    module = sys.modules.get(type(model).__module__)
    return getattr(module, "checkpoint_filter_fn", None)


def classifier_names(model: torch.nn.Module) -> tuple[str, ...]:
    """Return the module names of the model's classifier head(s)."""
    names = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")
    if names:
        return (names,) if isinstance(names, str) else tuple(names)
    get_classifier = getattr(model, "get_classifier", None)
    if get_classifier is None:
        return ()
    head = get_classifier()
    return tuple(name for name, module in model.named_modules() if module is head and name)


def load_pretrained_state(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` into ``model``, replacing a classifier head of another size.

    Raises :class:`WeightsError` naming the keys when anything but the head is
    missing or has another shape.
    """
    filter_fn = checkpoint_filter(model)
    if filter_fn is not None:
        try:
            state_dict = filter_fn(state_dict, model)
        except (KeyError, IndexError, RuntimeError, ValueError) as error:
            # Filters assume a checkpoint of their own architecture and fail on anything else.
            raise WeightsError(
                f"the checkpoint filter of {type(model).__name__} cannot map {source} "
                f"({type(error).__name__}: {error}); check that model.name matches the checkpoint"
            ) from None

    target = model.state_dict()
    head_prefixes = tuple(f"{name}." for name in classifier_names(model))
    replaced, mismatched = [], []
    for key in list(state_dict):
        if key not in target or state_dict[key].shape == target[key].shape:
            continue
        if key.startswith(head_prefixes):
            replaced.append(f"{key} {tuple(state_dict.pop(key).shape)} -> {tuple(target[key].shape)}")
        else:
            mismatched.append(f"{key}: checkpoint {tuple(state_dict[key].shape)}, model {tuple(target[key].shape)}")
    if mismatched:
        raise WeightsError(
            f"{source} does not fit {type(model).__name__}: {len(mismatched)} tensors have other shapes "
            f"({'; '.join(mismatched[:5])}). Check that model.name and model.kwargs match the checkpoint"
        )
    if replaced:
        logger.warning(
            "replacing the classifier head with a new randomly initialised one because %s has another "
            "number of classes: %s", source, ", ".join(replaced),
        )

    result = model.load_state_dict(state_dict, strict=False)
    missing = [key for key in result.missing_keys if not key.startswith(head_prefixes)]
    missing_head = [key for key in result.missing_keys if key.startswith(head_prefixes)]
    if missing_head and not replaced:
        # Plugin filters may drop a head of another size themselves before it reaches this check.
        logger.warning(
            "using a new randomly initialised classifier head because %s has no weights for it: %s",
            source, ", ".join(missing_head),
        )
    if missing:
        raise WeightsError(
            f"{source} lacks {len(missing)} tensors of {type(model).__name__} (first: {', '.join(missing[:5])}). "
            "Check that model.name matches the checkpoint"
        )
    if result.unexpected_keys:
        logger.warning("ignored %d tensors of %s that the model does not have: %s",
                       len(result.unexpected_keys), source, ", ".join(result.unexpected_keys[:5]))


def default_pretrained_location(model: torch.nn.Module, model_name: str) -> tuple[str, str | None]:
    """Return ("hf-hub", "ORG/NAME"), ("url", URL) or ("file", PATH) for the model's default weights."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("hf_hub_id"):
        return "hf-hub", cfg["hf_hub_id"]
    if cfg.get("url"):
        return "url", cfg["url"]
    if cfg.get("file"):
        return "file", cfg["file"]
    raise ModelConfigError(
        f"model.pretrained='default' but {model_name} has no default weights in its timm default_cfgs; "
        "set model.pretrained to 'hf-hub:ORG/NAME', a URL or a local file, or to null for random init"
    )


def fetch_pretrained_file(pretrained: str, model: torch.nn.Module, model_name: str) -> tuple[Path, str]:
    """Resolve ``model.pretrained`` to a local checkpoint file and a name for messages."""
    from huggingface_hub.errors import EntryNotFoundError

    kind, location = "file", pretrained
    if pretrained == "default":
        kind, location = default_pretrained_location(model, model_name)
    elif pretrained.startswith("hf-hub:"):
        kind, location = "hf-hub", pretrained[len("hf-hub:"):]
    elif pretrained.startswith(("http://", "https://")):
        kind = "url"

    if kind == "url":
        return download_url(location), location
    if kind == "file":
        path = Path(location).expanduser()
        if not path.is_file():
            raise ModelConfigError(
                f"model.pretrained={pretrained!r} is not a file, an https URL, 'hf-hub:ORG/NAME' or 'default'"
            )
        return path, str(path)

    repo_id, revision = split_hub_id(location)
    cfg_filename = (getattr(model, "pretrained_cfg", None) or {}).get("hf_hub_filename")
    filenames = [cfg_filename] if pretrained == "default" and cfg_filename else []
    filenames += ["model.safetensors", "pytorch_model.bin"]
    for filename in filenames:
        try:
            return download_hub_file(repo_id, filename, revision), f"hf-hub:{location}"
        except EntryNotFoundError:
            continue
    raise WeightsError(f"hf-hub:{location} has none of the weight files {', '.join(filenames)}")


def create_model(model_config, num_classes: int, img_size: int | None = None) -> torch.nn.Module:
    """Build the recipe's model with ``num_classes`` outputs, loading pretrained weights if named."""
    import timm

    spec = get_model_spec(model_config.name)
    if img_size is not None:
        check_img_size(spec.name, img_size)
    model = timm.create_model(
        spec.name,
        pretrained=False,
        num_classes=num_classes,
        drop_rate=model_config.drop_rate,
        drop_path_rate=model_config.drop_path_rate,
        **model_config.kwargs,
    )
    # The registered rule assumes default arguments; a model built with other
    # kwargs (e.g. MedViTV2 dilations) can check its own size rule.
    if img_size is not None and callable(getattr(model, "check_input_size", None)):
        try:
            model.check_input_size(img_size, img_size)
        except ValueError as error:
            raise ModelConfigError(
                f"input size {img_size}x{img_size} (data.img_size in a recipe) does not suit {spec.name} "
                f"with model.kwargs={model_config.kwargs}: {error}"
            ) from None
    if model_config.pretrained is None:
        return model

    try:
        path, source = fetch_pretrained_file(model_config.pretrained, model, spec.name)
        state_dict = read_state_dict(path, allow_pickle=True)
        load_pretrained_state(model, state_dict, source)
    except WeightsError as error:
        raise ModelConfigError(
            f"could not load model.pretrained={model_config.pretrained!r} for {spec.name}: {error}. "
            "Set model.pretrained=null to start from random weights"
        ) from None
    logger.info("initialised %s from %s", spec.name, source)
    return model


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
