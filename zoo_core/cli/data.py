"""``zoo data``: audit a dataset folder for leakage and bad files, and download the Kaggle dataset."""

from __future__ import annotations

import inspect
import json
import logging
import shutil
from pathlib import Path

import click

logger = logging.getLogger(__name__)

KAGGLE_HANDLE = "masoudnickparvar/brain-tumor-mri-dataset"
KAGGLE_PAGE = "https://www.kaggle.com/datasets/" + KAGGLE_HANDLE


@click.group()
def data() -> None:
    """Check and fetch datasets."""


@data.command()
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of text.")
@click.option(
    "--near-threshold",
    type=click.IntRange(0, 63),
    default=None,
    help="Maximum Hamming distance, in bits of the 64-bit pHash, for a near duplicate [default: 8].",
)
@click.option("--strict", is_flag=True, help="Exit with status 1 when duplicates span splits or labels.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Decoding threads [default: CPU count, at most 8].")
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write the JSON report to this file."
)
@click.option("--no-cache", is_flag=True, help="Decode every image again instead of reusing hashes of unchanged files.")
def audit(
    root: Path,
    as_json: bool,
    near_threshold: int | None,
    strict: bool,
    workers: int | None,
    output: Path | None,
    no_cache: bool,
) -> None:
    """Report image counts, sizes, colour modes, unreadable files and duplicates in ROOT.

    ROOT is a Kaggle-layout folder (Training/ and Testing/ with one folder per
    class) or a single folder of class folders. Exact duplicates have identical
    decoded pixels; near duplicates have 64-bit pHashes at most --near-threshold
    bits apart. Every duplicate pair within a split, across splits and across
    labels is listed by file name.
    """
    from zoo_core.data.audit import audit_folder
    from zoo_core.data.duplicates import DEFAULT_NEAR_THRESHOLD
    from zoo_core.data.folder import DatasetError

    threshold = DEFAULT_NEAR_THRESHOLD if near_threshold is None else near_threshold
    try:
        report = audit_folder(root, threshold, workers=workers, progress=not as_json, use_cache=not no_cache)
    except DatasetError as error:
        raise click.ClickException(str(error)) from None

    record = report.to_dict()
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(record, indent=2) + "\n")
    click.echo(json.dumps(record, indent=2) if as_json else report.format_text())

    if strict and report.leakage:
        counts = record["duplicate_counts"]
        click.echo(
            f"leakage found: {counts['cross_split']} pair(s) across splits, {counts['cross_label']} across labels",
            err=True,
        )
        raise SystemExit(1)


def _import_kagglehub():
    try:
        import kagglehub
    except ImportError:
        raise click.ClickException(
            "`zoo data download` needs the kagglehub package; install it with "
            "pip install 'brain-zoo[download]' (or pip install kagglehub)"
        ) from None
    return kagglehub


def _explain_download_error(error: Exception, handle: str) -> str:
    """Turn a kagglehub or network error into a message with the next step."""
    name = type(error).__name__
    status = getattr(getattr(error, "response", None), "status_code", None)
    manual = f"or download it by hand from {KAGGLE_PAGE} and set data.root to the folder holding Training/ and Testing/"
    if name in ("UnauthenticatedError", "CredentialError") or status in (401, 403):
        return (
            f"Kaggle rejected the request for '{handle}' ({name}: {error}); set KAGGLE_USERNAME and KAGGLE_KEY "
            f"or create ~/.kaggle/kaggle.json with an API token from https://www.kaggle.com/settings, {manual}"
        )
    if name == "NotFoundError" or status == 404:
        return f"Kaggle dataset '{handle}' not found ({error}); check --handle, {manual}"
    if isinstance(error, (ConnectionError, TimeoutError)) or name in ("ConnectionError", "Timeout", "ConnectTimeout", "ReadTimeout", "SSLError"):
        return f"cannot reach Kaggle to download '{handle}' ({name}: {error}); check the network or proxy, {manual}"
    return f"download of '{handle}' failed ({name}: {error}); {manual}"


@data.command()
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to put the dataset in [default: kagglehub's cache, ~/.cache/kagglehub].",
)
@click.option("--handle", default=KAGGLE_HANDLE, show_default=True, help="Kaggle dataset handle OWNER/NAME.")
@click.option("--force", is_flag=True, help="Download again even when a copy is already there.")
def download(dest: Path | None, handle: str, force: bool) -> None:
    """Download the Kaggle Brain Tumor MRI dataset with kagglehub and print its folder.

    Public datasets download without credentials when Kaggle allows it;
    otherwise set KAGGLE_USERNAME and KAGGLE_KEY or ~/.kaggle/kaggle.json.
    """
    kagglehub = _import_kagglehub()
    from zoo_core.data.audit import scan_splits
    from zoo_core.data.folder import DatasetError

    kwargs = {"force_download": force}
    copy_to = None
    if dest is not None:
        dest = dest.expanduser().resolve()
        # Older kagglehub releases have no output_dir, so copy out of their cache.
        if "output_dir" in inspect.signature(kagglehub.dataset_download).parameters:
            kwargs["output_dir"] = str(dest)
        else:
            copy_to = dest

    click.echo(f"downloading {handle} from Kaggle ...", err=True)
    try:
        path = Path(kagglehub.dataset_download(handle, **kwargs))
    except KeyboardInterrupt:
        raise
    except Exception as error:  # kagglehub raises requests, HTTP and its own error types
        logger.debug("kagglehub.dataset_download failed", exc_info=True)
        raise click.ClickException(_explain_download_error(error, handle)) from None

    if copy_to is not None:
        shutil.copytree(path, copy_to, dirs_exist_ok=True)
        path = copy_to

    try:
        splits = scan_splits(path)
    except DatasetError as error:
        raise click.ClickException(f"downloaded to {path}, but the folder is not a usable dataset: {error}") from None
    counts = ", ".join(f"{split} {len(samples)} files" for split, samples in splits.items())
    click.echo(f"dataset at {path} ({counts})")
    click.echo(f"train on it with --set data.name=kaggle --set data.root={path}")
