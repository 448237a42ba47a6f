"""Resumable, rank-aware sampling with per-sample seeded augmentation.

The training order of an epoch is a function of (seed, epoch) alone, and each
image's augmentation is drawn from a generator seeded by (seed, epoch, index).
So a run resumed mid-epoch, a run with a different number of DataLoader
workers and every DDP rank see exactly the augmentations an uninterrupted
single run would.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from zoo_core.data.datasets import ImageDataset


class EpochSampler(Sampler):
    """Yield ``(index, epoch)`` pairs for this rank, starting at a given position.

    With ``pad=True`` the index list is padded by repeating its head so every
    rank gets the same count, as DistributedSampler does for training. With
    ``pad=False`` (evaluation) each image is seen exactly once across ranks.
    """

    def __init__(self, num_samples: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1, pad: bool = True):
        self.num_samples = num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.pad = pad
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.start = start

    def _indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            indices = torch.randperm(self.num_samples, generator=generator).tolist()
        else:
            indices = list(range(self.num_samples))
        if self.pad and self.world_size > 1:
            total = -(-self.num_samples // self.world_size) * self.world_size
            indices += (indices * (total // max(len(indices), 1) + 1))[: total - len(indices)]
        return indices[self.rank :: self.world_size]

    def shard_size(self) -> int:
        return len(self._indices())

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self._indices()[self.start :]:
            yield index, self.epoch

    def __len__(self) -> int:
        return max(self.shard_size() - self.start, 0)


@contextmanager
def isolated_rng(seed: int):
    """Seed Python, NumPy and torch for a block, then restore their previous states."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    torch_state = torch.random.get_rng_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.random.set_rng_state(torch_state)


def sample_seed(base_seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([base_seed, epoch, index]).generate_state(1)[0])


class SeededTrainDataset(Dataset):
    """Training images whose augmentation depends only on (seed, epoch, index)."""

    def __init__(self, base: ImageDataset, transform: Callable, seed: int):
        self.base = base
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]):
        index, epoch = key
        image, label = self.base[index]
        with isolated_rng(sample_seed(self.seed, epoch, index)):
            return self.transform(image), label


class EvalDataset(Dataset):
    """Evaluation images keyed by ``(index, epoch)`` pairs like the training set."""

    def __init__(self, base: ImageDataset, transform: Callable):
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]):
        image, label = self.base[key[0]]
        return self.transform(image), label


class CachedUint8TrainDataset(Dataset):
    """Cached training images as stored (uint8, one or three channels), keyed by ``(index, epoch)`` pairs.

    Used with ``augment.backend=tensor``: the images are augmented a batch at
    a time on the training device, seeded by the keys that this dataset returns.
    """

    def __init__(self, base):
        if not hasattr(base, "cache") or not hasattr(base, "hashes"):
            raise TypeError(
                f"{type(base).__name__} is not a decoded-image cache dataset; augment.backend=tensor "
                "needs data.cache=true"
            )
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]):
        index, epoch = key
        array = self.base.cache.array(self.base.hashes[index])
        return array, self.base.samples[index].label, index, epoch


def collate_padded_uint8(batch):
    """Stack cached images of different sizes into one uint8 (B, C, H, W) batch, edge-padded at the bottom and right.

    Returns ``(images, sizes, keys, labels)``: ``sizes`` (B, 2) are the true
    heights and widths and ``keys`` (B, 2) the ``(index, epoch)`` pairs.
    Padding keeps every pixel of every image, so random resized crops can be
    drawn from the whole image as the PIL path does. Edge values (not zeros)
    fill the padding, so bilinear samples at an image's last row or column read
    that row or column again, as PIL's resampling clamps at the border.
    """
    arrays = [item[0] for item in batch]
    channels = 3 if any(array.ndim == 3 for array in arrays) else 1
    height = max(array.shape[0] for array in arrays)
    width = max(array.shape[1] for array in arrays)
    images = np.empty((len(arrays), channels, height, width), dtype=np.uint8)
    for row, array in enumerate(arrays):
        planes = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        if planes.shape[0] != channels:
            planes = np.repeat(planes, channels, axis=0)
        pad = ((0, 0), (0, height - array.shape[0]), (0, width - array.shape[1]))
        images[row] = np.pad(planes, pad, mode="edge")
    sizes = torch.tensor([array.shape[:2] for array in arrays], dtype=torch.long)
    keys = torch.tensor([(item[2], item[3]) for item in batch], dtype=torch.long)
    labels = torch.tensor([item[1] for item in batch], dtype=torch.long)
    return torch.from_numpy(images), sizes, keys, labels


class AugmentingCollate:
    """Collate function that pads a batch with :func:`collate_padded_uint8` and augments it in the DataLoader worker.

    Used with ``augment.backend=tensor`` when training on the CPU with
    workers, so the batched augmentation runs in parallel with the training
    step instead of in the training process. Returns ``(pixels, labels)``
    with the uint8 output of ``augment.augment_pixels``, which the training
    process normalises with ``augment.normalize``.
    """

    def __init__(self, augment):
        self.augment = augment

    def __call__(self, batch):
        images, sizes, keys, labels = collate_padded_uint8(batch)
        return self.augment.augment_pixels(images, sizes, keys), labels
