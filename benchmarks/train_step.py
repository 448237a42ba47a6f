"""Training-step throughput: brain-zoo's trainer against a bare timm training loop, rdnet_tiny at 224.

brain-zoo's ``rdnet_tiny`` is timm's own model, so the reference is timm's
model in the shortest training loop: one fixed random batch already in
memory, forward, cross-entropy with label smoothing 0.1, backward, AdamW step.
The brain-zoo side is the full ``zoo train`` loop on generated 512-pixel JPEGs
with the ``recipes/rdnet_tiny_224.yaml`` settings: data loading (with the
decoded-image cache by default), gradient clipping, the finite-loss check and
the learning-rate schedule. Both use the same batch size and precision.

Each ``--variants`` entry is timed in every round, in a rotated order.
``timm`` is the bare loop and ``zoo`` the trainer. A ``-channels_last`` or
``-compile`` suffix (``zoo-channels_last``, ``timm-compile``) turns on
``train.channels_last`` or ``torch.compile``. The first step of every variant
is left out, because it warms up the model and, with compile, compiles it. The trainer's step time is measured as in
``data_wait.py``: the time between two training batches leaving the
``DataLoader``.

Example:

    python benchmarks/train_step.py --variants timm zoo --batch-size 16 --steps 3 --rounds 2 \
        --output benchmarks/results/train_step.json
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

from _common import machine_info, make_kaggle_like, spread, write_result
from data_wait import dataset_sizes, time_trainer_run, trainer_recipe
from zoo_core.plugins import get_registries

logger = logging.getLogger("benchmarks.train_step")


def time_bare_timm(model_name: str, batch_size: int, img_size: int, steps: int, channels_last: bool,
                   compile_model: bool, warmup: int) -> list[float]:
    """Return the seconds of each of ``steps`` bare training steps of a timm model, after ``warmup`` untimed ones."""
    # The same device that the trainer's train.device=auto picks.
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = timm.create_model(model_name, num_classes=4, drop_path_rate=0.25)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    model.train()
    train_model = torch.compile(model) if compile_model else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.05)
    images = torch.randn(batch_size, 3, img_size, img_size).to(device=device, memory_format=memory_format)
    labels = torch.randint(0, 4, (batch_size,)).to(device)

    times = []
    for index in range(warmup + steps):
        start = time.perf_counter()
        loss = F.cross_entropy(train_model(images), labels, label_smoothing=0.1)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return times


def parse_variant(name: str) -> tuple[str, bool, bool]:
    parts = name.split("-")
    options = set(parts[1:])
    if parts[0] not in ("timm", "zoo") or not options <= {"channels_last", "compile"}:
        raise SystemExit(f"invalid variant {name!r}; use timm or zoo, optionally with -channels_last and/or -compile")
    return parts[0], "channels_last" in options, "compile" in options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=["timm", "zoo"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--img-size", type=int, default=224, help="input size; other sizes only for a quick check")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--loader", default="cached-w2", help="the trainer's loader setting, as in data_wait.py")
    parser.add_argument("--data", type=Path, default=None, help="folder for the generated JPEGs")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the training process (default: torch's own choice)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)
    get_registries()  # loads the plugins, which register their models in timm

    scratch = tempfile.TemporaryDirectory(prefix="zoo-step-")
    data_root = args.data or Path(scratch.name) / "data"
    per_class, test_per_class = dataset_sizes(args.steps + 1, args.batch_size)
    make_kaggle_like(data_root, per_class, test_per_class)

    variants = [parse_variant(name) for name in args.variants]
    step_times: dict[str, list[float]] = {name: [] for name in args.variants}
    per_round: dict[str, list[list[float]]] = {name: [] for name in args.variants}
    for round_index in range(args.rounds):
        shift = round_index % len(variants)
        order = list(zip(args.variants, variants))
        for name, (kind, channels_last, compile_model) in order[shift:] + order[:shift]:
            if kind == "timm":
                warmup = 2 if compile_model else 1
                times = time_bare_timm("rdnet_tiny", args.batch_size, args.img_size, args.steps, channels_last, compile_model,
                                       warmup)
            else:
                extra = [f"data.img_size={args.img_size}", f"train.channels_last={str(channels_last).lower()}",
                         f"train.compile={str(compile_model).lower()}"]
                recipe = trainer_recipe(data_root, args.loader, args.batch_size, extra)
                figures = time_trainer_run(recipe, Path(scratch.name) / f"run-{name}-{round_index}")
                # The first step (model warm-up and, with compile, compilation) is left out as in the bare loop.
                times = figures["step_s"][1 : args.steps + 1]
            step_times[name].extend(times)
            per_round[name].append(times)
            logger.info("round %d %s: %s s per step", round_index + 1, name, ", ".join(f"{t:.2f}" for t in times))

    reference = statistics.median(step_times[args.variants[0]])
    summary = {}
    for name, times in step_times.items():
        median = statistics.median(times)
        summary[name] = {
            "step_s": spread(times),
            "images_per_s": args.batch_size / median,
            "throughput_vs_first": reference / median,
        }
        print(f"{name:>22}: {median:.2f} s per step (min {min(times):.2f}, max {max(times):.2f}), "
              f"{args.batch_size / median:.2f} img/s, x{reference / median:.2f} of {args.variants[0]}")
    result = {
        "benchmark": f"training step throughput, rdnet_tiny at {args.img_size}",
        "command": f"python benchmarks/train_step.py --variants {' '.join(args.variants)} --batch-size "
                   f"{args.batch_size} --img-size {args.img_size} --steps {args.steps} --rounds {args.rounds} --loader {args.loader}"
                   + (f" --threads {args.threads}" if args.threads else ""),
        "machine": machine_info(),
        "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "precision": "float32 (train.amp=off)",
        "summary": summary,
        "step_s_per_round": per_round,
    }
    if args.output:
        write_result(args.output, result)
    scratch.cleanup()


if __name__ == "__main__":
    main()
