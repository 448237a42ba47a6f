"""Evaluation of a trained run on a dataset folder (``zoo eval``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo_core.data.datasets import ImageDataset, samples_from_folder
from zoo_core.evaluate.metrics import classification_report
from zoo_core.paths import SAMPLE_DIR
from zoo_core.train import checkpoint as ckpt

logger = logging.getLogger(__name__)


def eval_transform_from_preprocessing(preprocessing: dict[str, Any]):
    """Build the evaluation transform from timm-style preprocessing settings."""
    from timm.data import create_transform

    return create_transform(
        input_size=tuple(preprocessing["input_size"]),
        is_training=False,
        interpolation=preprocessing["interpolation"],
        crop_pct=preprocessing["crop_pct"],
        crop_mode=preprocessing.get("crop_mode", "center"),
        mean=tuple(preprocessing["mean"]),
        std=tuple(preprocessing["std"]),
    )


def load_run_model(run_dir: Path, checkpoint: str = "best") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the run's architecture and load the named checkpoint's weights."""
    import timm

    from zoo_core.plugins import get_model_spec

    folder = run_dir / "checkpoints" / checkpoint
    state = ckpt.load_trainer_state(folder)
    get_model_spec(state["architecture"])  # names the plugin to install when it is missing
    model = timm.create_model(state["architecture"], num_classes=state["num_classes"],
                              **state["recipe"]["model"].get("kwargs", {}))
    model.load_state_dict(ckpt.load_model_state(folder))
    model.eval()
    return model, state


@torch.no_grad()
def predict_probs(model: torch.nn.Module, dataset, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    labels, probs = [], []
    for images, batch_labels in loader:
        probs.append(torch.softmax(model(images).float(), dim=1).numpy())
        labels.append(batch_labels.numpy())
    return np.concatenate(labels), np.concatenate(probs)


def evaluate_run(run_dir: Path, data: str, checkpoint: str = "best", batch_size: int = 32) -> dict[str, Any]:
    """Evaluate a run's checkpoint on ``data`` ('sample' or a folder) and return the report."""
    if not (run_dir / "checkpoints" / checkpoint).exists() and not (run_dir / "checkpoints" / f".{checkpoint}.old").exists():
        raise FileNotFoundError(f"{run_dir} has no checkpoints/{checkpoint}; is it a finished run folder?")
    model, state = load_run_model(run_dir, checkpoint)
    folder = SAMPLE_DIR if data == "sample" else Path(data).expanduser()
    samples, split = samples_from_folder(folder)
    dataset = ImageDataset(samples, eval_transform_from_preprocessing(state["preprocessing"]))
    labels, probs = predict_probs(model, dataset, batch_size)
    report = classification_report(labels, probs, state["class_names"], f"{folder} ({split})")
    report["run"] = str(run_dir)
    report["checkpoint"] = checkpoint
    return report
