"""Compare CPU training throughput and batch-1 latency of our MedViTV2 with the official code.

The official model (github.com/Omid-Nejati/MedViTV2) imports NATTEN 0.17, which
has no CPU build with bias and backward in current releases, so it runs here
with a stand-in ``natten`` module given by ``--shim-dir`` (plain-PyTorch
neighborhood attention; see plugins/medvit2/tests/fixtures/NOTE.md). The
script first copies the official weights into our model and reports the
largest logit difference, so both sides compute the same function.

Example:

    python benchmarks/medvit2_vs_official.py --official-dir /work/official/MedViTV2 \
        --shim-dir /work/official/shim --batch-size 8 --threads 2
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
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per model, interleaved")
    parser.add_argument("--latency-runs", type=int, default=5, help="timed batch-1 forward passes per model")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and inputs")
    return parser.parse_args()


def load_official(args: argparse.Namespace) -> torch.nn.Module:
    os.environ["NATTEN_SHIM_MODE"] = args.shim_mode
    sys.path[:0] = [str(args.shim_dir), str(args.official_dir)]
    import MedViT  # the official module, found through --official-dir

    return getattr(MedViT, SIZES[args.size])(num_classes=args.num_classes)


def train_step(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> float:
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    F.cross_entropy(model(images), targets).backward()
    return time.perf_counter() - start


@torch.no_grad()
def forward_time(model: torch.nn.Module, image: torch.Tensor) -> float:
    start = time.perf_counter()
    model(image)
    return time.perf_counter() - start


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
            _logger.info("step %d %s: %.2f s", step, name, step_times[name][-1])

    official.eval()
    ours.eval()
    latencies = {name: [] for name in models}
    image = images[:1]
    for name, model in models.items():
        forward_time(model, image)
    for _ in range(args.latency_runs):
        for name, model in models.items():
            latencies[name].append(forward_time(model, image))

    # Medians, and the fastest step as the figure least disturbed by other processes.
    throughput = {name: args.batch_size / statistics.median(times) for name, times in step_times.items()}
    best_throughput = {name: args.batch_size / min(times) for name, times in step_times.items()}
    latency_ms = {name: 1000 * statistics.median(times) for name, times in latencies.items()}
    print(f"\nmedvit2_{args.size} at {args.img_size}x{args.img_size}, batch {args.batch_size}, "
          f"{args.threads} threads, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"official attention stand-in: {args.shim_mode}, 1-minute load average after run: {os.getloadavg()[0]:.1f}")
    print(f"max |logits difference| on 2 images: {logit_diff:.2e} in float32, {logit_diff_f64:.2e} in float64 "
          f"(max |logit| {logit_max:.2e})\n")
    print(f"| model | train img/s, median of {args.steps} steps | train img/s, fastest step "
          f"| batch-1 latency ms, median of {args.latency_runs} |")
    print("|---|---|---|---|")
    for name in models:
        print(f"| {name} | {throughput[name]:.2f} | {best_throughput[name]:.2f} | {latency_ms[name]:.0f} |")
    print(f"| ours / official | {throughput['ours'] / throughput['official']:.2f}x "
          f"| {best_throughput['ours'] / best_throughput['official']:.2f}x "
          f"| {latency_ms['official'] / latency_ms['ours']:.2f}x faster |")


if __name__ == "__main__":
    main()
