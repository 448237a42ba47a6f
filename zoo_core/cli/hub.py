"""``zoo export``, ``zoo push`` and ``zoo predict``: share trained models in Hugging Face Hub layout."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

CHECKPOINT_OPTION = click.option(
    "--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True,
    help="Which checkpoint of a run folder to use.",
)
LICENSE_OPTION = click.option(
    "--license", "license_id", default=None,
    help="License id for the model card metadata, e.g. apache-2.0 or cc-by-nc-4.0. Default: the licence "
    "timm records for the initial pretrained weights, else apache-2.0. It must fit the licences of the "
    "training data and of the initial weights.",
)


@click.command("export")
@click.argument("run_dir", metavar="RUN", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False))
@CHECKPOINT_OPTION
@click.option("--repo-id", default=None, metavar="ORG/NAME", help="Hub id to name in the model card's usage example.")
@LICENSE_OPTION
@click.option("--overwrite", is_flag=True, help="Replace the weights, config and model card already in DIR.")
def export(run_dir, out_dir, checkpoint, repo_id, license_id, overwrite):
    """Write the RUN folder's checkpoint to DIR as model.safetensors, config.json and README.md.

    timm loads the result with timm.create_model("local-dir:DIR", pretrained=True)
    once the plugin of the architecture is imported.
    """
    from zoo_core.hub import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE, HubError, export_run

    existing = [name for name in (WEIGHTS_FILE, CONFIG_FILE, CARD_FILE) if (Path(out_dir) / name).exists()]
    if existing and not overwrite:
        raise click.ClickException(
            f"{out_dir} already contains {', '.join(existing)}; pass --overwrite to replace them "
            "(an edited model card would be lost) or choose another folder"
        )
    try:
        folder = export_run(Path(run_dir), Path(out_dir), checkpoint=checkpoint, repo_id=repo_id,
                            license=license_id)
    except HubError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"exported {run_dir} ({checkpoint} checkpoint) to {folder}")


@click.command("push")
@click.argument("run_dir", metavar="RUN", type=click.Path(exists=True, file_okay=False))
@click.option("--repo-id", required=True, metavar="ORG/NAME", help="Hub model repository, created when missing.")
@click.option("--private", is_flag=True, help="Create the repository as private (no effect if it exists).")
@click.option("--revision", default=None, metavar="BRANCH", help="Branch to commit to, created from main when missing.")
@click.option("--overwrite-card", is_flag=True, help="Replace a model card that was edited on the Hub.")
@click.option("--commit-message", default=None, help="Commit message (default: run name and test top-1).")
@CHECKPOINT_OPTION
@LICENSE_OPTION
def push(run_dir, repo_id, private, revision, overwrite_card, commit_message, checkpoint, license_id):
    """Export the RUN folder and upload it to the Hugging Face Hub as a new commit.

    The token comes from HF_TOKEN or the login cache of `hf auth login`.
    """
    from zoo_core.hub import HubError, push_run

    try:
        result = push_run(Path(run_dir), repo_id, private=private, revision=revision,
                          overwrite_card=overwrite_card, checkpoint=checkpoint,
                          commit_message=commit_message, license=license_id)
    except HubError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"pushed {', '.join(result.files)} to {repo_id}: {result.commit_url}")
    if result.card_kept:
        click.echo("kept the edited model card on the Hub; pass --overwrite-card to replace it")


def _format_prediction(prediction: dict, top_k: int) -> str:
    ranked = sorted(prediction["probs"].items(), key=lambda item: item[1], reverse=True)[:top_k]
    scores = "  ".join(f"{name} {100 * prob:.1f}%" for name, prob in ranked)
    return f"{prediction['image']}: {prediction['label']}  ({scores})"


@click.command("predict")
@click.argument("model_source", metavar="MODEL")
@click.argument("images", metavar="IMAGE...", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every prediction.")
@click.option("--top-k", default=None, type=click.IntRange(1), help="Classes to show per image (default: all).")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1), help="Images per forward pass.")
@click.option("--allow-pickle", is_flag=True,
              help="Allow a .bin/.pth checkpoint when the model has no safetensors file; "
              "it is read with torch.load(weights_only=True).")
@CHECKPOINT_OPTION
def predict(model_source, images, as_json, top_k, batch_size, allow_pickle, checkpoint):
    """Classify IMAGE files with MODEL: a run folder, an exported folder or hf-hub:ORG/NAME[@REVISION].

    An IMAGE may also be a folder, whose image files are all classified. Each
    image gets its label and class probabilities, computed with the model's
    own preprocessing. Unreadable images are reported by name; the others are
    still classified and the exit status is 1.
    """
    from zoo_core.hub import HubError, load_model, predict_images

    try:
        loaded = load_model(model_source, checkpoint=checkpoint, allow_pickle=allow_pickle)
    except HubError as error:
        raise click.ClickException(str(error)) from None
    predictions, errors = predict_images(loaded, images, batch_size=batch_size)
    top_k = min(top_k or loaded.num_classes, loaded.num_classes)

    for error in errors:
        click.echo(f"error: cannot read image {error.path}: {error.reason}", err=True)
    if as_json:
        for prediction in predictions:
            ranked = sorted(prediction["probs"].items(), key=lambda item: item[1], reverse=True)[:top_k]
            prediction["top_k"] = [{"label": name, "prob": prob} for name, prob in ranked]
        payload = {
            "model": loaded.source,
            "architecture": loaded.architecture,
            "class_names": loaded.class_names,
            "predictions": predictions,
            "errors": [{"image": error.path, "reason": error.reason} for error in errors],
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        for prediction in predictions:
            click.echo(_format_prediction(prediction, top_k))
    if errors:
        click.echo(f"{len(errors)} of {len(errors) + len(predictions)} inputs could not be read", err=True)
        sys.exit(1)
