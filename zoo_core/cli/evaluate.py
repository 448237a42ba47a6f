"""``zoo eval``: evaluate a run or a published model on a dataset folder."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("eval")
@click.argument("model_source", metavar="MODEL")
@click.option("--data", "data_path", required=True,
              help="Dataset folder (Kaggle layout: its Testing/ split; class folders: all images), or 'sample' "
                   "for the bundled sample's test split (one image per class).")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True)
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--output", type=click.Path(dir_okay=False), help="Also write the JSON report to this file.")
@click.option("--allow-pickle", is_flag=True,
              help="Allow a .bin/.pth checkpoint when the model has no safetensors file; it is read with "
                   "torch.load(weights_only=True).")
def eval_command(model_source, data_path, checkpoint, batch_size, as_json, output, allow_pickle):
    """Evaluate MODEL on a dataset folder and print per-class results.

    MODEL is a run folder (its best checkpoint unless --checkpoint last), an
    exported Hub-layout folder or hf-hub:ORG/NAME[@REVISION].
    """
    from zoo_core.data.folder import DatasetError
    from zoo_core.train.evaluation import evaluate_run

    try:
        report = evaluate_run(model_source, data_path, checkpoint=checkpoint, batch_size=batch_size,
                              allow_pickle=allow_pickle)
    except (DatasetError, FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    if output:
        Path(output).write_text(json.dumps(report, indent=2))
    if report.get("overlaps_training"):
        click.echo(
            f"warning: {data_path} holds images this run trained or validated on, so these figures "
            "measure fit, not generalisation; evaluate on images the run did not train on.",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from zoo_core.evaluate import metrics

    formatter = getattr(metrics, "format_report", None)
    click.echo(formatter(report) if formatter else json.dumps(report, indent=2))
