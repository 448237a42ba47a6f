"""``zoo sweep``: run a base recipe over a list or grid of overrides."""

from __future__ import annotations

import click


@click.command()
@click.argument("sweep_path", metavar="SWEEP", type=click.Path(dir_okay=False))
@click.option("--progress/--no-progress", default=True, help="Show a progress bar per epoch.")
def sweep(sweep_path, progress):
    """Run every step of the SWEEP YAML file, one run folder each, and write history.md and history.csv.

    Steps that already finished are skipped and interrupted ones resume, so
    running the same sweep again only does the missing work.
    """
    from zoo_core.data.folder import DatasetError
    from zoo_core.models import ModelConfigError
    from zoo_core.recipe import RecipeError
    from zoo_core.registry import UnknownNameError
    from zoo_core.train.sweep import run_sweep
    from zoo_core.train.trainer import TrainingError, TrainingInterrupted

    try:
        result, actions = run_sweep(sweep_path, progress=progress)
    except TrainingInterrupted as error:
        click.echo(f"{error}\nOr run the whole sweep again: zoo sweep {sweep_path}", err=True)
        raise SystemExit(130) from None
    except (RecipeError, DatasetError, ModelConfigError, UnknownNameError, TrainingError) as error:
        raise click.ClickException(str(error)) from None
    for line in actions:
        click.echo(line)
    click.echo(f"history: {result.output / 'history.md'} and {result.output / 'history.csv'}")
