"""Compare CPU training throughput and batch-1 latency of our MedViTV2 with the official code.

The official model (github.com/Omid-Nejati/MedViTV2) imports NATTEN 0.17.
Current NATTEN releases have no CPU build with bias and backward, so the
official model runs here with a stand-in ``natten`` module from ``--shim-dir``
that computes neighborhood attention in plain PyTorch (see
plugins/medvit2/tests/fixtures/NOTE.md). The script first copies the official
weights into our model and reports the largest logit difference, so both
sides are shown to compute the same function.

Example:

    python benchmarks/medvit2_vs_official.py --official-dir /work/official/MedViTV2 \
        --shim-dir /work/official/shim --batch-size 8 --steps 6 --latency-runs 7 --threads 2
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

_logger = logging.getLogger(__name__)

SIZES = {"tiny": "MedViT_tiny", "small": "MedViT_small", "base": "MedViT_base", "large": "MedViT_large"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-dir", type=Path, required=True, help="checkout of Omid-Nejati/MedViTV2")
    parser.add_argument("--shim-dir", type=Path, required=True, help="directory with natten and einops stand-ins")
    parser.add_argument("--shim-mode", default="dense", choices=["dense", "loop"],
                        help="attention of the natten stand-in: full masked attention or one pixel at a time")
    parser.add_argument("--size", default="small", choices=sorted(SIZES), help="model size")
    parser.add_argument("--img-size", type=int, default=224, help="square input size in pixels")
    parser.add_argument("--batch-size", type=int, default=8, help="training batch size")
    parser.add_argument("--num-classes", type=int, default=4, help="classifier width")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps per model")
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per model, interleaved")
    parser.add_argument("--latency-runs", type=int, default=7, help="timed batch-1 forward passes per model")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and inputs")
    return parser.parse_args()


def load_official(args: argparse.Namespace) -> torch.nn.Module:
    os.environ["NATTEN_SHIM_MODE"] = args.shim_mode
    sys.path[:0] = [str(args.shim_dir), str(args.official_dir)]
    import MedViT  # the official module, found through --official-dir

    return getattr(MedViT, SIZES[args.size])(num_classes=args.num_classes)


def train_step(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """Run forward, loss and backward; return the wall-clock and process CPU seconds."""
    model.zero_grad(set_to_none=True)
    start, start_cpu = time.perf_counter(), time.process_time()
    F.cross_entropy(model(images), targets).backward()
    return time.perf_counter() - start, time.process_time() - start_cpu


@torch.no_grad()
def forward_time(model: torch.nn.Module, image: torch.Tensor) -> tuple[float, float]:
    start, start_cpu = time.perf_counter(), time.process_time()
    model(image)
    return time.perf_counter() - start, time.process_time() - start_cpu


@torch.no_grad()
def compare_logits(official: torch.nn.Module, ours: torch.nn.Module, images: torch.Tensor) -> tuple[float, float, float]:
    """Return the max logit difference in float32 and in float64, and the max |logit|, in eval mode."""
    official.eval()
    ours.eval()
    reference = official(images)
    diff = (reference - ours(images)).abs().max().item()

    official.double()
    ours.double()
    diff_f64 = (official(images.double()) - ours(images.double())).abs().max().item()
    official.float()
    ours.float()
    return diff, diff_f64, reference.abs().max().item()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    import zoo_medvit2  # noqa: F401  (registers the timm models)
    from zoo_medvit2.medvit2 import checkpoint_filter_fn

    official = load_official(args)
    ours = timm.create_model(f"medvit2_{args.size}", num_classes=args.num_classes)
    ours.load_state_dict(checkpoint_filter_fn(official.state_dict(), ours), strict=True)

    generator = torch.Generator().manual_seed(args.seed)
    images = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=generator)
    targets = torch.randint(0, args.num_classes, (args.batch_size,), generator=generator)

    logit_diff, logit_diff_f64, logit_max = compare_logits(official, ours, images[:2])
    _logger.info("max |logits difference| on 2 images, eval mode: %.2e (float64: %.2e), max |logit| %.2e",
                 logit_diff, logit_diff_f64, logit_max)

    official.train()
    ours.train()
    models = {"ours": ours, "official": official}
    step_times = {name: [] for name in models}
    for _ in range(args.warmup):
        for name, model in models.items():
            train_step(model, images, targets)
    for step in range(args.steps):
        for name, model in models.items():
            step_times[name].append(train_step(model, images, targets))
            _logger.info("step %d %s: %.2f s wall, %.2f s CPU", step, name, *step_times[name][-1])

    official.eval()
    ours.eval()
    latencies = {name: [] for name in models}
    image = images[:1]
    for name, model in models.items():
        forward_time(model, image)
    for _ in range(args.latency_runs):
        for name, model in models.items():
            latencies[name].append(forward_time(model, image))

    # CPU time is less disturbed than wall-clock time by other processes on the same cores.
    throughput, cpu_throughput, latency_ms, cpu_latency_ms = {}, {}, {}, {}
    for name in models:
        throughput[name] = args.batch_size / statistics.median(wall for wall, _ in step_times[name])
        cpu_throughput[name] = args.batch_size / statistics.median(cpu for _, cpu in step_times[name])
        latency_ms[name] = 1000 * statistics.median(wall for wall, _ in latencies[name])
        cpu_latency_ms[name] = 1000 * statistics.median(cpu for _, cpu in latencies[name])

    print(f"\nmedvit2_{args.size} at {args.img_size}x{args.img_size}, batch {args.batch_size}, "
          f"{args.threads} threads, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"official attention stand-in: {args.shim_mode}, 1-minute load average after run: {os.getloadavg()[0]:.1f}")
    print(f"max |logits difference| on 2 images: {logit_diff:.2e} in float32, {logit_diff_f64:.2e} in float64 "
          f"(max |logit| {logit_max:.2e})\n")
    print(f"| model | train img/s (wall) | train img/s per CPU-s | batch-1 latency ms (wall) "
          f"| batch-1 latency ms (CPU) |")
    print("|---|---|---|---|---|")
    for name in models:
        print(f"| {name} | {throughput[name]:.2f} | {cpu_throughput[name]:.2f} | {latency_ms[name]:.0f} "
              f"| {cpu_latency_ms[name]:.0f} |")
    print(f"| ours / official | {throughput['ours'] / throughput['official']:.2f}x "
          f"| {cpu_throughput['ours'] / cpu_throughput['official']:.2f}x "
          f"| {latency_ms['official'] / latency_ms['ours']:.2f}x faster "
          f"| {cpu_latency_ms['official'] / cpu_latency_ms['ours']:.2f}x faster |")
    print(f"\nmedians of {args.steps} training steps and {args.latency_runs} batch-1 forward passes per model")


if __name__ == "__main__":
    main()
