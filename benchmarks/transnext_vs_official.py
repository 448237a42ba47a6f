"""Compare CPU speed of zoo_transnext's TransNeXt with the official native implementation.

The official code is not part of brain-zoo; pass the path of its
``classification/`` folder. Both models get the same weights (the official
state dict is loaded into ours), and the script first checks that their logits
agree, then measures:

* training throughput: images per second of forward + cross-entropy backward
  in train mode at ``--batch-size``;
* latency: median time of one eval-mode forward at batch size 1.

Both are reported in wall-clock time and in this process's CPU time. The
models alternate step by step, so both see the same machine load.

Example:

    python benchmarks/transnext_vs_official.py /work/official/TransNeXt/classification \
        --model transnext_tiny --img-size 224 --batch-size 8 --threads 1
"""

import argparse
import logging
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

# Reuse the fixture generator's importer for the official module.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "transnext" / "tests" / "fixtures"))
from make_transnext_fixtures import import_official  # noqa: E402

import timm  # noqa: E402
import zoo_transnext.transnext  # noqa: E402

_logger = logging.getLogger("transnext_vs_official")


def build_pair(official, model_name: str, img_size: int):
    official_model = getattr(official, model_name)(img_size=img_size, pretrain_size=224)
    # The official module registers the same names in timm, so call our builder directly.
    ours = getattr(zoo_transnext.transnext, model_name)()
    ours.load_state_dict(official_model.state_dict(), strict=False)
    return official_model, ours


def max_logit_diff(official_model, ours, img_size: int) -> float:
    official_model.eval()
    ours.eval()
    image = torch.randn(2, 3, img_size, img_size)
    with torch.no_grad():
        return (official_model(image) - ours(image)).abs().max().item()


def _train_step(model, image: torch.Tensor, target: torch.Tensor) -> None:
    loss = F.cross_entropy(model(image), target)
    loss.backward()
    model.zero_grad(set_to_none=True)


def _eval_step(model, image: torch.Tensor) -> None:
    with torch.no_grad():
        model(image)


def measure(models: dict, step, steps: int, warmup: int) -> dict:
    """Run ``step(model)`` for each model in turn and return median (wall, cpu) seconds per model.

    Models alternate step by step so that a change in machine load during the
    run affects both alike. CPU seconds are this process's user+system time,
    which counts less of the time spent waiting for a busy machine.
    """
    timings = {name: ([], []) for name in models}
    for index in range(warmup + steps):
        for name, model in models.items():
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            step(model)
            if index >= warmup:
                timings[name][0].append(time.perf_counter() - wall_start)
                timings[name][1].append(time.process_time() - cpu_start)
    return {name: (statistics.median(wall), statistics.median(cpu)) for name, (wall, cpu) in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("classification_dir", type=Path, help="the official repository's classification/ folder")
    parser.add_argument("--model", default="transnext_tiny", help="model name in both registries")
    parser.add_argument("--img-size", type=int, default=224, help="square input size in pixels")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of the training measurement")
    parser.add_argument("--steps", type=int, default=5, help="measured training steps (median is reported)")
    parser.add_argument("--latency-steps", type=int, default=10, help="measured batch-1 forwards")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps before each measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    official = import_official(args.classification_dir)
    official_model, ours = build_pair(official, args.model, args.img_size)

    diff = max_logit_diff(official_model, ours, args.img_size)
    _logger.info("max |logit difference| at %d: %.2e", args.img_size, diff)

    models = {"official": official_model, "ours": ours}
    image = torch.randn(args.batch_size, 3, args.img_size, args.img_size)
    target = torch.randint(0, 1000, (args.batch_size,))
    for model in models.values():
        model.train()
    train = measure(models, lambda model: _train_step(model, image, target), args.steps, args.warmup)

    single = torch.randn(1, 3, args.img_size, args.img_size)
    for model in models.values():
        model.eval()
    infer = measure(models, lambda model: _eval_step(model, single), args.latency_steps, args.warmup)

    for name in models:
        _logger.info(
            "%-8s train: %.3f img/s wall, %.3f img/s per CPU-second (batch %d); "
            "latency: %.1f ms wall, %.1f ms CPU (batch 1)",
            name, args.batch_size / train[name][0], args.batch_size / train[name][1], args.batch_size,
            infer[name][0] * 1000, infer[name][1] * 1000)
    _logger.info(
        "ours/official training throughput: %.2fx wall, %.2fx CPU; official/ours batch-1 latency: %.2fx wall, %.2fx CPU",
        train["official"][0] / train["ours"][0], train["official"][1] / train["ours"][1],
        infer["official"][0] / infer["ours"][0], infer["official"][1] / infer["ours"][1])
    _logger.info("torch %s, timm %s, %d threads, %s, %s", torch.__version__, timm.__version__,
                 torch.get_num_threads(), platform.processor() or platform.machine(), platform.platform())


if __name__ == "__main__":
    main()
