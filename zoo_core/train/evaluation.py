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


def load_run_model(source: str | Path, checkpoint: str = "best",
                   allow_pickle: bool = False) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a model through :func:`zoo_core.hub.load_model` and return it with its trainer-state facts.

    ``source`` is a run folder, a checkpoint folder, a Hub-layout folder or
    ``hf-hub:ORG/NAME[@REVISION]``; ``checkpoint`` applies to run folders.
    """
    from zoo_core.hub import load_model

    loaded = load_model(source, checkpoint=checkpoint, allow_pickle=allow_pickle)
    return loaded.model, loaded.state()


@torch.no_grad()
def predict_probs(model: torch.nn.Module, dataset, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    labels, probs = [], []
    for images, batch_labels in loader:
        probs.append(torch.softmax(model(images).float(), dim=1).numpy())
        labels.append(batch_labels.numpy())
    return np.concatenate(labels), np.concatenate(probs)


def evaluate_run(source: str | Path, data: str, checkpoint: str = "best", batch_size: int = 32,
                 allow_pickle: bool = False) -> dict[str, Any]:
    """Evaluate a model on ``data`` ('sample' or a folder) and return the report.

    ``source`` is anything :func:`zoo_core.hub.load_model` accepts. Load
    failures raise :class:`zoo_core.hub.HubError`, a ``ValueError``.
    """
    model, state = load_run_model(source, checkpoint, allow_pickle=allow_pickle)
    if data == "sample":
        # The bundled sample's test split: the last image of each class, never trained on.
        from zoo_core.data.datasets import build_sample
        from zoo_core.recipe import DataConfig

        folder, split, label = SAMPLE_DIR, "test", "bundled sample (test)"
        samples = build_sample(DataConfig(name="sample"), seed=0).test
    else:
        folder = Path(data).expanduser()
        samples, split = samples_from_folder(folder)
        label = f"{folder} ({split})"
    dataset = ImageDataset(samples, eval_transform_from_preprocessing(state["preprocessing"]))
    labels, probs = predict_probs(model, dataset, batch_size)
    report = classification_report(labels, probs, state["class_names"], label)
    report["run"] = str(source)
    report["checkpoint"] = checkpoint
    report["overlaps_training"] = _overlaps_training(source, folder, split)
    return report


def _overlaps_training(source: str | Path, folder: Path, split: str) -> bool:
    """Return True when ``folder``'s evaluated images include the run's training pool.

    A folder of class folders is evaluated whole; if the run trained on that
    same folder, its training and validation images are among those scored.
    """
    summary_path = Path(source) / "summary.json"
    if split != "all" or not summary_path.is_file():
        return False
    import json

    root = json.loads(summary_path.read_text()).get("data", {}).get("root")
    return root is not None and Path(root).resolve() == folder.resolve()
