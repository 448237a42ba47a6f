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
