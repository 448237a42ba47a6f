"""Stratified, seeded validation split that keeps groups of duplicates together."""

from __future__ import annotations

import random
from collections import defaultdict

from zoo_core.data.folder import Sample


def stratified_split(
    samples: list[Sample],
    val_fraction: float,
    seed: int,
    groups: dict[str, str] | None = None,
) -> tuple[list[Sample], list[Sample]]:
    """Split samples into (train, val) with about ``val_fraction`` of each class in val.

    ``groups`` maps a path to a group id; all members of a group land on the
    same side, so near-duplicate slices cannot leak from train into val. Each
    class with at least two groups gets at least one validation group and keeps
    at least one training group. The result depends only on the samples, the
    fraction and the seed.
    """
    rng = random.Random(seed)
    by_class: dict[int, dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    for sample in sorted(samples, key=lambda s: s.path):
        group = groups.get(sample.path, sample.path) if groups else sample.path
        by_class[sample.label][group].append(sample)

    train: list[Sample] = []
    val: list[Sample] = []
    for label in sorted(by_class):
        class_groups = [by_class[label][key] for key in sorted(by_class[label])]
        rng.shuffle(class_groups)
        total = sum(len(group) for group in class_groups)
        target = round(total * val_fraction)
        if len(class_groups) >= 2:
            target = max(target, 1)
        # Take whole groups until the target is met; the last group always stays
        # in train so that the class is never missing from training.
        taken = 0
        split_at = 0
        while split_at < len(class_groups) - 1 and taken < target:
            taken += len(class_groups[split_at])
            split_at += 1
        for group in class_groups[:split_at]:
            val.extend(group)
        for group in class_groups[split_at:]:
            train.extend(group)
    return train, val
