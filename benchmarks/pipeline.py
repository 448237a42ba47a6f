"""Input-pipeline throughput: plain ImageFolder + timm transforms against brain-zoo, without and with the cache.

All pipelines apply the same training augmentation (random resized crop to
``--img-size``, horizontal flip, RandAugment m9 n2, ImageNet normalisation) to
a Kaggle-like folder of 512-pixel JPEGs that the script generates, and feed
batches through a ``DataLoader`` with ``--workers`` worker processes:

* ``plain``: ``torchvision.datasets.ImageFolder`` with ``timm.data.create_transform``;
* ``zoo``: brain-zoo's training dataset (``ImageDataset`` in ``SeededTrainDataset``);
* ``zoo_cached``: the same on the decoded-image cache (built once before timing);
* ``zoo_cached_tensor``: the cached uint8 images, edge-padded into batches and
  augmented a batch at a time by ``zoo_core.augment.tensor.TensorAugment``
  on the CPU, where the trainer runs it with ``augment.backend=tensor``. With
  workers, they augment and send uint8 batches, which this process normalises.
  Without workers, this process does all of it.

Each pipeline first runs one untimed epoch. Then the timed epochs alternate
between the pipelines, in a rotated order, so a change in machine load reaches
them all alike. The script prints images per second per pipeline (median, min
and max) and the per-round ratio to ``plain``, and writes them as JSON.

Example:

    python benchmarks/pipeline.py --workers 2 --rounds 5 --output benchmarks/results/pipeline.json
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import torch
from timm.data import create_transform
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from _common import machine_info, make_kaggle_like, spread, write_result
from zoo_core.augment.policy import MriPolicy
from zoo_core.augment.tensor import TensorAugment
from zoo_core.cache import CachedImageDataset, cache_base_size, open_or_build_cache
from zoo_core.data.datasets import ImageDataset
from zoo_core.data.folder import scan_class_folders, to_samples
from zoo_core.recipe import AugmentConfig
from zoo_core.train.sampling import (
    AugmentingCollate,
    CachedUint8TrainDataset,
    EpochSampler,
    SeededTrainDataset,
    collate_padded_uint8,
)

logger = logging.getLogger("benchmarks.pipeline")


def plain_loader(train_dir: Path, config: AugmentConfig, img_size: int, batch_size: int, workers: int) -> DataLoader:
    transform = create_transform(
        input_size=img_size,
        is_training=True,
        scale=tuple(config.scale),
        hflip=config.hflip,
        color_jitter=None,
        auto_augment=f"rand-m{config.randaugment_magnitude}-n{config.randaugment_num_ops}-mstd0.5",
        interpolation=config.interpolation,
        re_prob=0.0,
    )
    dataset = ImageFolder(str(train_dir), transform=transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                      persistent_workers=workers > 0)


def zoo_loader(images, config: AugmentConfig, img_size: int, batch_size: int, workers: int) -> DataLoader:
    dataset = SeededTrainDataset(images, MriPolicy(config, img_size).train_transform(), seed=0)
    sampler = EpochSampler(len(dataset), shuffle=True, seed=0)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      persistent_workers=workers > 0)


def tensor_loader(images: CachedImageDataset, augment: TensorAugment, batch_size: int,
                  workers: int) -> DataLoader:
    """Return the loader of ``augment.backend=tensor`` on the CPU; ``run_epoch`` augments when there are no workers."""
    sampler = EpochSampler(len(images), shuffle=True, seed=0)
    collate_fn = AugmentingCollate(augment) if workers > 0 else collate_padded_uint8
    return DataLoader(CachedUint8TrainDataset(images), batch_size=batch_size, sampler=sampler, num_workers=workers,
                      persistent_workers=workers > 0, collate_fn=collate_fn)


def _worker_cpu_seconds(loader: DataLoader) -> float:
    """Return the user + system CPU seconds used so far by the loader's persistent worker processes."""
    # NOTE: reads DataLoader's private ``_iterator._workers``; fine for a benchmark, not for the package.
    iterator = getattr(loader, "_iterator", None)
    total = 0.0
    for worker in getattr(iterator, "_workers", []) or []:
        try:
            fields = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # Fields 14 and 15 of /proc/PID/stat (utime, stime), counted after the ")" that ends the name.
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run_epoch(loader: DataLoader, epoch: int, augment: TensorAugment | None = None) -> tuple[int, float, float]:
    """Iterate one epoch and return (images, wall seconds, CPU seconds of this process and its workers).

    With ``augment``, this process augments each padded uint8 batch, or normalises each batch that
    ``AugmentingCollate`` augmented in the workers, and that time is counted.
    """
    sampler = loader.sampler
    if isinstance(sampler, EpochSampler):
        sampler.set_epoch(epoch)
    count = 0
    cpu_start = time.process_time() + _worker_cpu_seconds(loader)
    start = time.perf_counter()
    for batch in loader:
        images = batch[0]
        if augment is not None:
            images = augment(*batch[:3]) if len(batch) == 4 else augment.normalize(images)
        count += images.shape[0]
    wall = time.perf_counter() - start
    return count, wall, time.process_time() + _worker_cpu_seconds(loader) - cpu_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="folder for the generated JPEGs (default: a temporary folder)")
    parser.add_argument("--per-class", type=int, default=128, help="training images per class")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per pipeline")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads of this process, which runs zoo_cached_tensor's augmentation")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # DataLoader workers run torch with one thread. In this process, per-image
    # ToTensor and Normalize (no workers) and batched tensor work would otherwise
    # use every core, and the threads wait for each other and for the workers.
    # When this process ran the whole batched augmentation next to 2 workers on a
    # 2-core machine, 2 threads took 17 CPU ms per image instead of under 1 ms.
    torch.set_num_threads(args.threads)

    scratch = tempfile.TemporaryDirectory(prefix="zoo-bench-")
    data_root = args.data or Path(scratch.name) / "data"
    make_kaggle_like(data_root, args.per_class, 2)
    train_dir = data_root / "Training"
    samples = to_samples(scan_class_folders(train_dir))
    config = AugmentConfig()

    start = time.perf_counter()
    cache, hashes = open_or_build_cache([s.path for s in samples], cache_base_size(args.img_size, config.crop_pct),
                                        config.interpolation, root=Path(scratch.name) / "cache")
    build_s = time.perf_counter() - start
    cache_bytes = (cache.folder / "pixels.u8").stat().st_size
    logger.info("cache built in %.1f s: %d images, %.1f MB", build_s, len(cache), cache_bytes / 1e6)

    loaders = {
        "plain": plain_loader(train_dir, config, args.img_size, args.batch_size, args.workers),
        "zoo": zoo_loader(ImageDataset(samples), config, args.img_size, args.batch_size, args.workers),
        "zoo_cached": zoo_loader(CachedImageDataset(samples, hashes, cache), config, args.img_size,
                                 args.batch_size, args.workers),
    }
    tensor_augment = TensorAugment.from_config(config, args.img_size, seed=0)
    loaders["zoo_cached_tensor"] = tensor_loader(CachedImageDataset(samples, hashes, cache), tensor_augment,
                                                 args.batch_size, args.workers)
    augments = {"zoo_cached_tensor": tensor_augment}
    names = list(loaders)
    for name in names:
        run_epoch(loaders[name], epoch=0, augment=augments.get(name))

    throughput: dict[str, list[float]] = {name: [] for name in names}
    cpu_ms: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        order = names[round_index % len(names):] + names[: round_index % len(names)]
        for name in order:
            count, seconds, cpu_seconds = run_epoch(loaders[name], epoch=round_index + 1, augment=augments.get(name))
            throughput[name].append(count / seconds)
            cpu_ms[name].append(1000 * cpu_seconds / count)
        logger.info("round %d: %s", round_index + 1,
                    ", ".join(f"{name} {throughput[name][-1]:.0f} img/s" for name in names))

    ratios = {name: [value / base for value, base in zip(throughput[name], throughput["plain"])] for name in names}
    cpu_ratios = {name: [base / value for value, base in zip(cpu_ms[name], cpu_ms["plain"])] for name in names}
    result = {
        "benchmark": "input pipeline, training transform",
        "command": "python benchmarks/pipeline.py " + " ".join(
            f"--{key.replace('_', '-')} {value}" for key, value in vars(args).items()
            if value is not None and key not in ("data", "output")),
        "machine": machine_info(),
        "images": len(samples),
        "img_size": args.img_size,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "cache_build_s": build_s,
        "cache_mb": cache_bytes / 1e6,
        "images_per_s": {name: spread(values) for name, values in throughput.items()},
        "ratio_to_plain": {name: spread(values) for name, values in ratios.items()},
        "cpu_ms_per_image": {name: spread(values) for name, values in cpu_ms.items()},
        "cpu_efficiency_ratio_to_plain": {name: spread(values) for name, values in cpu_ratios.items()},
    }
    for name in names:
        figures = result["images_per_s"][name]
        ratio = result["ratio_to_plain"][name]
        print(f"{name:>17}: {figures['median']:7.1f} img/s (min {figures['min']:.1f}, max {figures['max']:.1f}); "
              f"x{ratio['median']:.2f} of plain (min {ratio['min']:.2f}, max {ratio['max']:.2f}); "
              f"{result['cpu_ms_per_image'][name]['median']:.2f} CPU ms per image, "
              f"x{result['cpu_efficiency_ratio_to_plain'][name]['median']:.2f} of plain")
    if args.output:
        write_result(args.output, result)
    del loaders
    scratch.cleanup()


if __name__ == "__main__":
    main()
