"""Recipes for tiny, fast training runs used across the test suite."""

from __future__ import annotations

from zoo_core.recipe import Recipe, apply_overrides, recipe_from_dict


def tiny_recipe(*overrides: str, model: str = "test_convnext", data: str = "phantom") -> Recipe:
    """Return a recipe that trains a tiny real timm model for a few seconds on the CPU."""
    base = {
        "name": "tiny",
        "seed": 0,
        "model": {"name": model},
        "data": {"name": data, "img_size": 32, "val_fraction": 0.25, "num_workers": 0,
                 "phantom_images_per_class": 8},
        "augment": {"randaugment_magnitude": 0, "scale": [0.9, 1.0]},
        "optim": {"lr": 3e-3, "weight_decay": 0.0},
        "schedule": {"name": "constant", "warmup_epochs": 0},
        "train": {"epochs": 2, "batch_size": 8, "amp": "off", "early_stopping_patience": None,
                  "label_smoothing": 0.0},
    }
    return recipe_from_dict(apply_overrides(base, list(overrides)), "tiny recipe")


# Times differ between runs; everything else in metrics.jsonl must match exactly after a resume.
TIMING_KEYS = {"epoch_time_s", "elapsed_s"}


def metrics_without_timing(run_dir) -> list[dict]:
    """Return the run's metrics.jsonl records without their timing fields."""
    import json

    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{key: value for key, value in json.loads(line).items() if key not in TIMING_KEYS} for line in lines]


def interrupt_mid_epoch(recipe: Recipe, run_dir, monkeypatch, stop_at_check: int) -> None:
    """Train until the trainer's ``stop_at_check``-th stop check, as a SIGINT there would, and check the stop.

    The trainer checks for a stop request after every optimizer step inside an
    epoch and once at its end, so the caller picks a check inside an epoch.
    """
    import pytest

    from zoo_core.train import checkpoint as ckpt
    from zoo_core.train.run import train_recipe
    from zoo_core.train.trainer import DefaultTrainer, TrainingInterrupted

    original = DefaultTrainer._stop_requested
    calls = {"count": 0}

    def stop_at(self, context):
        calls["count"] += 1
        if calls["count"] == stop_at_check:
            self._signal_name = "SIGINT"
        return original(self, context)

    monkeypatch.setattr(DefaultTrainer, "_stop_requested", stop_at)
    with pytest.raises(TrainingInterrupted):
        train_recipe(recipe, run_dir, progress=False)
    monkeypatch.setattr(DefaultTrainer, "_stop_requested", original)
    assert ckpt.load_trainer_state(run_dir / "checkpoints" / "last")["batch_in_epoch"] > 0, (
        "the interrupt should land inside an epoch"
    )
