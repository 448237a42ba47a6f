"""Share of each training step spent waiting for data, in brain-zoo's own trainer.

The script runs ``zoo train`` (through ``train_recipe``) with the
``recipes/rdnet_tiny_224.yaml`` settings on a generated Kaggle-like folder of
512-pixel JPEGs, one epoch of ``--steps`` + 1 batches per run, for each loader
setting in ``--configs`` (``cached``/``uncached`` and the worker count, e.g.
``cached-w2``). The runs alternate between the settings for ``--rounds``
rounds.

Timing: every ``next()`` on the training ``DataLoader`` iterator is timed. The
time inside ``next()`` is the data wait, and the time between two batches
leaving ``next()`` is one full step (data wait plus forward, backward and
optimizer step). The first batch of a run also waits for worker start-up, so
it is reported apart and left out of the share.

Example:

    python benchmarks/data_wait.py --configs uncached-w0 uncached-w2 cached-w2 --rounds 2 \
        --output benchmarks/results/data_wait.json
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.utils.data.dataloader as dataloader_module

from _common import machine_info, make_kaggle_like, spread, write_result
from zoo_core.recipe import load_recipe
from zoo_core.train.run import train_recipe
from zoo_core.train.sampling import SeededTrainDataset

logger = logging.getLogger("benchmarks.data_wait")

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "rdnet_tiny_224.yaml"


class BatchTimer:
    """Record when each training batch was requested from and returned by the DataLoader iterator."""

    def __init__(self):
        self.enter: list[float] = []
        self.exit: list[float] = []
        self._original = None

    def __enter__(self):
        original = dataloader_module._BaseDataLoaderIter.__next__
        timer = self

        def timed_next(iterator):
            if not isinstance(iterator._dataset, SeededTrainDataset):
                return original(iterator)
            timer.enter.append(time.perf_counter())
            batch = original(iterator)
            timer.exit.append(time.perf_counter())
            return batch

        self._original = original
        dataloader_module._BaseDataLoaderIter.__next__ = timed_next
        return self

    def __exit__(self, *exc_info):
        dataloader_module._BaseDataLoaderIter.__next__ = self._original

    def figures(self) -> dict:
        """Return the first batch's wait, the steady-state step times and waits, and the wait share."""
        waits = [leave - enter for enter, leave in zip(self.enter, self.exit)]
        steps = [later - earlier for earlier, later in zip(self.exit, self.exit[1:])]
        # Step k runs from batch k leaving next() to batch k+1 leaving it, so it contains wait k+1.
        steady_waits = waits[1 : len(steps) + 1]
        return {
            "first_batch_wait_s": waits[0],
            "step_s": steps,
            "wait_s": steady_waits,
            "wait_share": sum(steady_waits) / sum(steps),
        }


def trainer_recipe(data_root: Path, config: str, batch_size: int, extra: list[str]):
    kind, workers = config.split("-w")
    if kind not in ("cached", "uncached") or not workers.isdigit():
        raise SystemExit(f"invalid loader setting {config!r}; use cached-wN or uncached-wN, e.g. cached-w2")
    overrides = [
        f"data.root={data_root}",
        f"data.cache={'true' if kind == 'cached' else 'false'}",
        f"data.num_workers={workers}",
        f"train.batch_size={batch_size}",
        "train.epochs=1",
        "train.amp='off'",
        "train.early_stopping_patience=null",
        "model.pretrained=null",
        "schedule.warmup_epochs=0",
        *extra,
    ]
    return load_recipe(RECIPE, overrides)


def time_trainer_run(recipe, run_dir: Path) -> dict:
    """Train one epoch of ``recipe`` into ``run_dir`` and return the :class:`BatchTimer` figures."""
    with BatchTimer() as timer:
        train_recipe(recipe, run_dir, progress=False)
    return timer.figures()


def dataset_sizes(steps: int, batch_size: int) -> tuple[int, int]:
    """Return training images per class and test images per class for ``steps`` + 1 batches after a 10% validation split."""
    train_images = (steps + 1) * batch_size
    per_class = -(-train_images // 4)
    # data.val_fraction takes 10% of the training pool, so generate enough that the rest fills the batches.
    return -(-per_class * 10 // 9) + 1, 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["uncached-w0", "uncached-w2", "cached-w2"],
                        help="loader settings: cached-wN or uncached-wN (N DataLoader workers)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", type=Path, default=None, help="folder for the generated JPEGs")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="extra recipe override")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the training process (default: torch's own choice)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)

    scratch = tempfile.TemporaryDirectory(prefix="zoo-wait-")
    data_root = args.data or Path(scratch.name) / "data"
    per_class, test_per_class = dataset_sizes(args.steps, args.batch_size)
    make_kaggle_like(data_root, per_class, test_per_class)

    runs: dict[str, list[dict]] = {config: [] for config in args.configs}
    for round_index in range(args.rounds):
        shift = round_index % len(args.configs)
        for config in args.configs[shift:] + args.configs[:shift]:
            recipe = trainer_recipe(data_root, config, args.batch_size, args.extra)
            figures = time_trainer_run(recipe, Path(scratch.name) / f"run-{config}-{round_index}")
            runs[config].append(figures)
            logger.info("round %d %s: step %.2f s median, wait share %.2f%%, first batch %.2f s", round_index + 1,
                        config, statistics.median(figures["step_s"]), 100 * figures["wait_share"],
                        figures["first_batch_wait_s"])

    summary = {}
    for config, figures in runs.items():
        summary[config] = {
            "step_s": spread([value for run in figures for value in run["step_s"]]),
            "wait_share": spread([run["wait_share"] for run in figures]),
            "first_batch_wait_s": spread([run["first_batch_wait_s"] for run in figures]),
        }
        print(f"{config:>12}: step {summary[config]['step_s']['median']:.2f} s, "
              f"data wait {100 * summary[config]['wait_share']['median']:.2f}% of the step "
              f"(min {100 * summary[config]['wait_share']['min']:.2f}%, max {100 * summary[config]['wait_share']['max']:.2f}%), "
              f"first batch {summary[config]['first_batch_wait_s']['median']:.2f} s")
    result = {
        "benchmark": "data wait share of a training step, rdnet_tiny at 224",
        "command": f"python benchmarks/data_wait.py --configs {' '.join(args.configs)} --batch-size {args.batch_size} "
                   f"--steps {args.steps} --rounds {args.rounds}" + (f" --threads {args.threads}" if args.threads else "") + "".join(f" --set {item}" for item in args.extra),
        "machine": machine_info(),
        "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "summary": summary,
        "runs": runs,
    }
    if args.output:
        write_result(args.output, result)
    scratch.cleanup()


if __name__ == "__main__":
    main()
