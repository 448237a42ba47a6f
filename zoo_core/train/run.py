"""Entry points that run a recipe into a run folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from zoo_core.plugins import get_registries
from zoo_core.recipe import Recipe, load_recipe

logger = logging.getLogger(__name__)


def prepare_run_dir(recipe: Recipe, run_dir: Path, resume: bool) -> None:
    """Create the run folder and write the resolved recipe, refusing to mix two runs."""
    recipe_path = run_dir / "recipe.yaml"
    if resume:
        if not recipe_path.is_file():
            raise FileNotFoundError(f"{run_dir} is not a run folder (no recipe.yaml); cannot resume it")
        return
    if (run_dir / "metrics.jsonl").exists() or (run_dir / "checkpoints").exists():
        raise FileExistsError(
            f"run folder {run_dir} already contains a run; pass another --output, delete it, "
            f"or continue it with: zoo train --resume {run_dir}"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe.save(recipe_path)


def train_recipe(recipe: Recipe, run_dir: str | Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train ``recipe`` into ``run_dir`` with the trainer it names and return the summary."""
    import os

    run_dir = Path(run_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        prepare_run_dir(recipe, run_dir, resume)
    trainer_cls = get_registries().trainers.get(recipe.train.trainer).cls
    return trainer_cls(recipe, run_dir, resume=resume, progress=progress).fit()


def resume_run(run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Continue the run in ``run_dir`` from its last checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / "recipe.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no recipe.yaml); cannot resume it")
    recipe = load_recipe(run_dir / "recipe.yaml")
    return train_recipe(recipe, run_dir, resume=True, progress=progress)
