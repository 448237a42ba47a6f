"""``zoo train``: run a recipe into a run folder, once or once per seed, on one or several processes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import click

from zoo_core.recipe import RecipeError, load_recipe

logger = logging.getLogger(__name__)


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers, e.g. 0,1,2") from None
    if not seeds:
        raise click.BadParameter("give at least one seed, e.g. --seeds 0,1,2")
    return seeds


def _launch_torchrun(nproc: int) -> None:
    """Re-run this command under torchrun with ``nproc`` processes on this machine."""
    arguments = []
    skip = False
    for argument in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if argument == "--nproc-per-node":
            skip = True
            continue
        if argument.startswith("--nproc-per-node="):
            continue
        arguments.append(argument)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "zoo_core.cli", *arguments]
    logger.info("launching: %s", " ".join(command))
    raise SystemExit(subprocess.call(command))


def _free_run_dir(path: Path) -> Path:
    """Return ``path``, or the first of ``path-2``, ``path-3``, ... that contains no run yet."""
    candidate = path
    number = 1
    while (candidate / "recipe.yaml").exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


@click.command()
@click.argument("recipe_path", metavar="RECIPE", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe value, e.g. --set optim.lr=5e-5 (repeatable).")
@click.option("--output", "-o", type=click.Path(file_okay=False),
              help="Run folder to write. Default: runs/<recipe name>, or runs/<recipe name>-2, -3, ... if taken.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, exists=True),
              help="Continue the run in this folder from its last checkpoint.")
@click.option("--seeds", help="Comma-separated seeds; one sibling run folder <output>-seed<N> per seed.")
@click.option("--nproc-per-node", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes (GPUs) for DDP; more than 1 launches torchrun.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar per epoch.")
def train(recipe_path, overrides, output, resume_dir, seeds, nproc_per_node, progress):
    """Train a model from a RECIPE YAML file and write a run folder.

    The run folder contains recipe.yaml (the resolved recipe, which `zoo train`
    accepts again), metrics.jsonl, checkpoints/last and checkpoints/best,
    summary.json and curves.png.
    """
    from zoo_core.data.folder import DatasetError
    from zoo_core.models import ModelConfigError
    from zoo_core.registry import UnknownNameError
    from zoo_core.train.checkpoint import CheckpointError
    from zoo_core.train.run import resume_run, train_recipe
    from zoo_core.train.trainer import TrainingError, TrainingInterrupted

    if nproc_per_node > 1 and "RANK" not in os.environ:
        _launch_torchrun(nproc_per_node)

    try:
        if resume_dir:
            if recipe_path or overrides or seeds:
                raise click.UsageError("--resume continues a run as it was; do not pass a RECIPE, --set or --seeds")
            summaries = [resume_run(resume_dir, progress=progress)]
        else:
            if not recipe_path:
                raise click.UsageError("missing RECIPE; e.g. zoo train recipes/quickstart.yaml")
            seed_list = _parse_seeds(seeds)
            base = load_recipe(recipe_path, list(overrides))
            output_dir = Path(output) if output else _free_run_dir(Path("runs") / base.name)
            summaries = []
            if seed_list is None:
                summaries.append(train_recipe(base, output_dir, progress=progress))
            else:
                for seed in seed_list:
                    recipe = base.model_copy(update={"seed": seed})
                    run_dir = output_dir.with_name(f"{output_dir.name}-seed{seed}")
                    click.echo(f"seed {seed}: {run_dir}", err=True)
                    summaries.append(train_recipe(recipe, run_dir, progress=progress))
    except TrainingInterrupted as error:
        click.echo(str(error), err=True)
        raise SystemExit(130) from None
    except (RecipeError, DatasetError, ModelConfigError, UnknownNameError, TrainingError, CheckpointError,
            FileExistsError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None

    if int(os.environ.get("RANK", "0")) == 0:
        for summary in summaries:
            test = summary["test"]
            click.echo(
                f"{summary['recipe_name']} (seed {summary['seed']}): test top1 {100 * test['top1']:.2f}% "
                f"on {test['num_images']} images, best epoch {summary['best_epoch']} of {summary['epochs_run']}"
            )
