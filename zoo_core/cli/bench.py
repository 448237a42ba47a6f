"""``zoo bench``: efficiency benchmark of one registered model."""

from __future__ import annotations

import json

import click

from zoo_core.models import ModelConfigError
from zoo_core.registry import UnknownNameError


def _format_bench(result: dict) -> str:
    latency = result["latency_ms"]
    threads = result["torch_threads"]
    lines = [
        f"{result['model']} at {result['img_size']}x{result['img_size']} on {result['device']} "
        f"({result['device_name']}, {result['dtype']}, {threads} thread{'' if threads == 1 else 's'})",
        f"  parameters             {result['params'] / 1e6:.2f} M",
        f"  FLOPs (batch 1)        {result['gflops']:.3f} G  ({result['macs'] / 1e9:.3f} GMACs)",
        f"  latency (batch 1)      median {latency['median']:.2f} ms, p90 {latency['p90']:.2f} ms "
        f"over {latency['runs']} runs after {latency['warmup']} warm-up runs",
        f"  inference throughput   {result['inference_throughput_img_s']:.1f} images/s "
        f"(batch {result['batch_size']})",
        f"  training throughput    {result['train_throughput_img_s']:.1f} images/s "
        f"(batch {result['batch_size']}, forward + backward + AdamW step)",
        f"  peak memory            {result['peak_memory_mb']:.1f} MiB ({result['peak_memory_source']})",
    ]
    return "\n".join(lines)


@click.command()
@click.argument("model")
@click.option("--img-size", type=click.IntRange(min=1), default=None,
              help="Input height and width in pixels; defaults to the model's registered size.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Batch size for the inference and training throughput.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--runs", type=click.IntRange(min=1), default=30, show_default=True,
              help="Timed batch-1 forward passes for the latency.")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True,
              help="Untimed forward passes before the latency runs.")
@click.option("--throughput-runs", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed batches for each throughput figure.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="PyTorch CPU threads during the measurement; default: PyTorch's own choice.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def bench(model, img_size, batch_size, device, runs, warmup, throughput_runs, threads, as_json):
    """Measure parameters, FLOPs, latency, throughput and peak memory of MODEL (random weights)."""
    from zoo_core.evaluate.bench import benchmark_registered_model

    try:
        result = benchmark_registered_model(
            model,
            img_size,
            batch_size=batch_size,
            device=device,
            runs=runs,
            warmup=warmup,
            throughput_runs=throughput_runs,
            threads=threads,
        )
    except UnknownNameError as error:
        raise click.ClickException(f"{error}. `zoo models` lists the registered models.") from None
    except (ModelConfigError, ValueError) as error:
        raise click.ClickException(str(error)) from None

    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(_format_bench(result))
