"""Checkpoints: model weights as safetensors plus a JSON trainer state, written atomically.

A checkpoint is a folder (``checkpoints/last/``, ``checkpoints/best/``) with
``model.safetensors``, ``trainer_state.json`` and, for resumable checkpoints,
``optimizer.safetensors``. It is written into a temporary sibling folder and
swapped into place with renames, so a crash at any moment leaves either the
old or the new checkpoint, never a mix or a half-written file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing or cannot be read."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def unwrap_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return contiguous CPU tensors with any DDP or torch.compile prefix removed."""
    cleaned = {}
    for key, tensor in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix):]
        cleaned[key] = tensor.detach().to("cpu").contiguous()
    return cleaned


def flatten_optimizer_state(optimizer_state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into named tensors and a JSON-ready remainder."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, param_state in optimizer_state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": optimizer_state["param_groups"], "scalars": scalars}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        param_id, key = name.split(".", 1)
        state.setdefault(int(param_id), {})[key] = tensor
    for param_id, values in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    folder: Path,
    model_state: dict[str, torch.Tensor],
    trainer_state: dict[str, Any],
    optimizer_tensors: dict[str, torch.Tensor] | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write a checkpoint folder atomically, replacing any previous one."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        save_file(model_state, staging / MODEL_FILE, metadata={"format": "pt", **(metadata or {})})
        if optimizer_tensors is not None:
            save_file(optimizer_tensors, staging / OPTIMIZER_FILE)
        state = {"format_version": FORMAT_VERSION, **trainer_state}
        (staging / STATE_FILE).write_text(json.dumps(state, indent=2))
        for child in staging.iterdir():
            _fsync_file(child)
        _fsync_dir(staging)

        previous = folder.parent / f".{folder.name}.old"
        if previous.exists():
            shutil.rmtree(previous)
        if folder.exists():
            folder.rename(previous)
        staging.rename(folder)
        _fsync_dir(folder.parent)
        if previous.exists():
            shutil.rmtree(previous)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_staging_folders(checkpoints_dir: Path) -> None:
    """Delete temporary folders left by a process killed while writing a checkpoint."""
    if not checkpoints_dir.is_dir():
        return
    for child in checkpoints_dir.iterdir():
        if child.is_dir() and child.name.startswith(".") and ".tmp-" in child.name:
            shutil.rmtree(child, ignore_errors=True)


def resolve_checkpoint(folder: Path) -> Path:
    """Return the folder to read, falling back to the previous copy left by a crash mid-swap."""
    folder = Path(folder)
    if (folder / STATE_FILE).is_file():
        return folder
    previous = folder.parent / f".{folder.name}.old"
    if (previous / STATE_FILE).is_file():
        return previous
    raise CheckpointError(f"no checkpoint found at {folder} (expected {STATE_FILE} and {MODEL_FILE} there)")


def load_trainer_state(folder: Path) -> dict[str, Any]:
    folder = resolve_checkpoint(folder)
    try:
        return json.loads((folder / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read {folder / STATE_FILE}: {error}") from None


def load_model_state(folder: Path) -> dict[str, torch.Tensor]:
    folder = resolve_checkpoint(folder)
    return load_file(folder / MODEL_FILE)


def load_optimizer_tensors(folder: Path) -> dict[str, torch.Tensor]:
    folder = resolve_checkpoint(folder)
    path = folder / OPTIMIZER_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {OPTIMIZER_FILE}, so training cannot resume from it; resume from checkpoints/last")
    return load_file(path)
