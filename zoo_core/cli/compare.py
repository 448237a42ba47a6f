"""``zoo compare``: accuracy-versus-efficiency report over finished runs."""

from __future__ import annotations

import click

from zoo_core.evaluate.dynamics import DEFAULT_STABILITY_FRACTION, DEFAULT_TOLERANCE
from zoo_core.models import ModelConfigError
from zoo_core.registry import UnknownNameError


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--output", "-o", default="comparison", show_default=True, type=click.Path(file_okay=False),
              help="Folder for comparison.md, runs.csv, groups.csv and the PNG figures.")
@click.option("--device", default="cpu", show_default=True,
              help="Device for the FLOPs count and latency: auto, cpu, cuda or cuda:N.")
@click.option("--latency/--no-latency", "with_latency", default=True, show_default=True,
              help="Measure batch-1 latency (random weights) for each model and input size.")
@click.option("--latency-runs", type=click.IntRange(min=1), default=20, show_default=True,
              help="Timed forward passes per latency figure.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="PyTorch CPU threads during the latency measurement; default: PyTorch's own choice.")
@click.option("--tolerance", type=click.FloatRange(min=0.0), default=DEFAULT_TOLERANCE, show_default=True,
              help="Convergence tolerance: a fraction of the best validation loss (0.05 = within 5%).")
@click.option("--stability-fraction", type=click.FloatRange(min=0.0, min_open=True, max=1.0),
              default=DEFAULT_STABILITY_FRACTION, show_default=True,
              help="Fraction of the last epochs over which stability is measured.")
def compare(runs, output, device, with_latency, latency_runs, threads, tolerance, stability_fraction):
    """Compare finished RUNS (run folders, or folders of run folders) in tables and figures.

    Runs whose recipes differ only in the seed are grouped and reported as
    mean ± standard deviation.
    """
    from zoo_core.evaluate.compare import CompareError, write_comparison

    try:
        written = write_comparison(
            runs,
            output,
            tolerance=tolerance,
            stability_fraction=stability_fraction,
            with_latency=with_latency,
            device=device,
            latency_runs=latency_runs,
            threads=threads,
        )
    except CompareError as error:
        raise click.ClickException(str(error)) from None
    except UnknownNameError as error:
        raise click.ClickException(f"{error}; install the plugin that trained these runs") from None
    except (ModelConfigError, ValueError) as error:
        raise click.ClickException(str(error)) from None

    click.echo(written["markdown"].read_text())
    click.echo(f"Wrote {written['markdown']}, {written['runs_csv']}, {written['groups_csv']} "
               f"and {sum(path.suffix == '.png' for path in written.values())} figures to {output}")
