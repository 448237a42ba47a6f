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
