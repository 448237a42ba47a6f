"""Entry points that run a recipe into a run folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from zoo_core.models import check_img_size
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


def check_recipe(recipe: Recipe) -> None:
    """Check the registered names and the input size before a run folder is created."""
    registries = get_registries()
    registries.trainers.get(recipe.train.trainer)
    registries.datasets.get(recipe.data.name)
    registries.augmentations.get(recipe.augment.policy)
    check_img_size(recipe.model.name, recipe.data.img_size)


def _remove_unstarted_run(run_dir: Path, created: bool) -> None:
    """Delete what a run wrote before its first checkpoint, so a failed start leaves no run folder."""
    if (run_dir / "checkpoints").exists():
        return
    for name in ("recipe.yaml", "metrics.jsonl", ".metrics.jsonl.tmp"):
        (run_dir / name).unlink(missing_ok=True)
    if created:
        try:
            run_dir.rmdir()
        except OSError:
            logger.debug("kept %s: it contains other files", run_dir)


def train_recipe(recipe: Recipe, run_dir: str | Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train ``recipe`` into ``run_dir`` with the trainer it names and return the summary."""
    run_dir = Path(run_dir)
    is_main = int(os.environ.get("RANK", "0")) == 0
    check_recipe(recipe)
    created = not run_dir.exists()
    if is_main:
        prepare_run_dir(recipe, run_dir, resume)
    trainer_cls = get_registries().trainers.get(recipe.train.trainer).cls
    try:
        return trainer_cls(recipe, run_dir, resume=resume, progress=progress).fit()
    except BaseException:
        if is_main and not resume:
            _remove_unstarted_run(run_dir, created)
        raise


def resume_run(run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Continue the run in ``run_dir`` from its last checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / "recipe.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no recipe.yaml); cannot resume it")
    if (run_dir / "summary.json").is_file():
        raise FileExistsError(
            f"{run_dir} already finished (it has summary.json), so there is nothing to resume; to train "
            f"longer, start a new run: zoo train {run_dir / 'recipe.yaml'} --set train.epochs=N --output NEW_DIR"
        )
    recipe = load_recipe(run_dir / "recipe.yaml")
    return train_recipe(recipe, run_dir, resume=True, progress=progress)
