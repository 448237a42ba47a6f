"""Efficiency benchmark: parameters, FLOPs, latency, throughput and peak memory.

All measurements run in float32 with random input of shape
``(batch, 3, img_size, img_size)``. FLOPs come from ``torch.utils.flop_counter``,
which counts matrix multiplications, convolutions and attention but not
element-wise operations, so they are slightly below the true count; MACs are
half the FLOPs.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import resource
import statistics
import sys
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    "benchmark_model",
    "benchmark_registered_model",
    "count_flops",
    "device_name",
    "measure_latency",
    "resolve_device",
    "torch_threads",
]

logger = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a usable ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"invalid device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")
    return resolved


def count_flops(model: torch.nn.Module, img_size: int, device: torch.device | str = "cpu") -> int:
    """Count the forward-pass FLOPs of one image of ``img_size`` pixels square."""
    model.eval()
    inputs = torch.randn(1, 3, img_size, img_size, device=device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(inputs)
    return int(counter.get_total_flops())


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_calls(function, device: torch.device, warmup: int, runs: int) -> list[float]:
    """Call ``function`` ``warmup`` times untimed, then return ``runs`` durations in seconds."""
    for _ in range(warmup):
        function()
    _synchronize(device)

    durations = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        _synchronize(device)
        durations.append(time.perf_counter() - start)
    return durations


def measure_latency(model: torch.nn.Module, img_size: int, device: torch.device, *, warmup: int = 5,
                    runs: int = 30) -> dict:
    """Time batch-1 inference: median, 90th percentile and mean in milliseconds."""
    model.eval()
    single = torch.randn(1, 3, img_size, img_size, device=device)
    with torch.inference_mode():
        latency_ms = np.array(_time_calls(lambda: model(single), device, warmup, runs)) * 1000
    return {
        "median": float(np.median(latency_ms)),
        "p90": float(np.percentile(latency_ms, 90)),
        "mean": float(latency_ms.mean()),
        "batch_size": 1,
        "runs": runs,
        "warmup": warmup,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run the body with ``threads`` intra-op CPU threads (unchanged when None), then restore the count."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise ValueError(f"threads={threads!r} must be at least 1")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _process_peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kibibytes, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def benchmark_model(
    model: torch.nn.Module,
    img_size: int,
    *,
    batch_size: int = 32,
    device: str = "auto",
    warmup: int = 5,
    runs: int = 30,
    throughput_runs: int = 5,
    num_classes: int | None = None,
    threads: int | None = None,
) -> dict:
    """Measure one model's efficiency; the model's weights change during the training-step timing.

    Latency is measured at batch size 1 (median and 90th percentile over
    ``runs`` timed calls after ``warmup`` calls). Throughput is measured at
    ``batch_size`` for inference and for a training step (forward, cross-entropy,
    backward, AdamW step). Peak memory is the CUDA allocator's peak on GPU and
    the process's peak resident set size on CPU; the latter covers the whole
    process life, including what ran before the benchmark. ``threads`` sets
    PyTorch's CPU thread count for the measurement.
    """
    with torch_threads(threads):
        return _benchmark(model, img_size, batch_size, device, warmup, runs, throughput_runs, num_classes)


def _benchmark(model, img_size, batch_size, device, warmup, runs, throughput_runs, num_classes) -> dict:
    for name, value, minimum in (("img_size", img_size, 1), ("batch_size", batch_size, 1), ("runs", runs, 1),
                                 ("throughput_runs", throughput_runs, 1), ("warmup", warmup, 0)):
        if value < minimum:
            raise ValueError(f"{name}={value!r} must be at least {minimum}")
    resolved = resolve_device(device)
    model = model.to(resolved)
    if resolved.type == "cuda":
        torch.cuda.reset_peak_memory_stats(resolved)

    params = sum(parameter.numel() for parameter in model.parameters())
    flops = count_flops(model, img_size, resolved)

    latency = measure_latency(model, img_size, resolved, warmup=warmup, runs=runs)

    batch = torch.randn(batch_size, 3, img_size, img_size, device=resolved)
    with torch.inference_mode():
        inference = _time_calls(lambda: model(batch), resolved, min(warmup, 2), throughput_runs)
        if num_classes is None:
            num_classes = model(batch[:1]).shape[-1]
    targets = torch.randint(0, num_classes, (batch_size,), device=resolved)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    model.train()

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(batch), targets)
        loss.backward()
        optimizer.step()

    training = _time_calls(train_step, resolved, min(warmup, 2), throughput_runs)

    if resolved.type == "cuda":
        peak_memory_mb = torch.cuda.max_memory_allocated(resolved) / 2**20
        memory_source = "torch.cuda.max_memory_allocated"
    else:
        peak_memory_mb = _process_peak_rss_mb()
        memory_source = "process peak RSS (getrusage ru_maxrss)"

    return {
        "img_size": img_size,
        "batch_size": batch_size,
        "device": str(resolved),
        "device_name": device_name(resolved),
        "dtype": "float32",
        "torch_threads": torch.get_num_threads(),
        "params": params,
        "flops": flops,
        "macs": flops // 2,
        "gflops": flops / 1e9,
        "latency_ms": latency,
        "inference_throughput_img_s": batch_size / statistics.median(inference),
        "train_throughput_img_s": batch_size / statistics.median(training),
        "train_step_ms": 1000 * statistics.median(training),
        "throughput_runs": throughput_runs,
        "peak_memory_mb": float(peak_memory_mb),
        "peak_memory_source": memory_source,
        "torch_version": torch.__version__,
    }


def benchmark_registered_model(
    name: str,
    img_size: int | None = None,
    *,
    num_classes: int = 4,
    model_kwargs: dict | None = None,
    **options,
) -> dict:
    """Build a registered zoo model with random weights and benchmark it.

    ``img_size`` defaults to the model's registered default input size; the
    other keyword arguments go to :func:`benchmark_model`.
    """
    from zoo_core.models import create_model
    from zoo_core.plugins import get_model_spec
    from zoo_core.recipe import ModelConfig

    spec = get_model_spec(name)
    img_size = img_size or spec.default_img_size
    if spec.check_img_size is not None:
        try:
            spec.check_img_size(img_size, img_size)
        except ValueError as error:
            raise ValueError(f"img_size={img_size} does not suit {name}: {error}") from None
    config = ModelConfig(name=name, kwargs=model_kwargs or {})
    model = create_model(config, num_classes=num_classes, img_size=img_size)
    logger.info("benchmarking %s at %dx%d", name, img_size, img_size)
    return {"model": name, **benchmark_model(model, img_size, num_classes=num_classes, **options)}
