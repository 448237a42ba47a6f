"""``zoo eval``: evaluate a run's best checkpoint on a dataset folder."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("eval")
@click.argument("run_dir", metavar="RUN", type=click.Path(exists=True, file_okay=False))
@click.option("--data", "data_path", required=True,
              help="Dataset folder (Kaggle layout: its Testing/ split; or class folders: all images), or 'sample'.")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True)
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--output", type=click.Path(dir_okay=False), help="Also write the JSON report to this file.")
def eval_command(run_dir, data_path, checkpoint, batch_size, as_json, output):
    """Evaluate the RUN folder's checkpoint on a dataset folder and print per-class results."""
    from zoo_core.data.folder import DatasetError
    from zoo_core.train.evaluation import evaluate_run

    try:
        report = evaluate_run(Path(run_dir), data_path, checkpoint=checkpoint, batch_size=batch_size)
    except (DatasetError, FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    if output:
        Path(output).write_text(json.dumps(report, indent=2))
    if report.get("overlaps_training"):
        click.echo(
            f"warning: {data_path} holds images this run trained or validated on, so these figures "
            "measure fit, not generalisation; use its Testing split or new images for that.",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from zoo_core.evaluate import metrics

    formatter = getattr(metrics, "format_report", None)
    click.echo(formatter(report) if formatter else json.dumps(report, indent=2))
