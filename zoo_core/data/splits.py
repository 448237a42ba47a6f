"""Stratified, seeded validation split that keeps groups of duplicates together."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from zoo_core.data.folder import Sample

__all__ = ["stratified_split"]


def _group_label(members: list[Sample]) -> int:
    # A group whose copies carry different labels is stratified by its most
    # common label (the lowest index on a tie), but still moves as one.
    counts = Counter(sample.label for sample in members)
    return min(counts, key=lambda label: (-counts[label], label))


def stratified_split(
    samples: list[Sample],
    val_fraction: float,
    seed: int,
    groups: dict[str, str] | None = None,
) -> tuple[list[Sample], list[Sample]]:
    """Split samples into (train, val) with about ``val_fraction`` of each class in val.

    ``groups`` maps a path to a group id. All members of a group land on the
    same side, so duplicate slices cannot leak from train into val, even when
    their labels differ. Paths missing from ``groups`` form groups of one. Each
    class with at least two groups gets at least one validation group and keeps
    at least one training group. The result depends only on the samples, the
    groups, the fraction and the seed, not on the input order.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"invalid val_fraction {val_fraction}; use a value between 0 and 1, e.g. 0.1")
    groups = groups or {}
    members: dict[str, list[Sample]] = defaultdict(list)
    for sample in sorted(samples, key=lambda s: s.path):
        members[groups.get(sample.path, sample.path)].append(sample)

    by_class: dict[int, list[list[Sample]]] = defaultdict(list)
    for key in sorted(members):
        by_class[_group_label(members[key])].append(members[key])

    rng = random.Random(seed)
    train: list[Sample] = []
    val: list[Sample] = []
    for label in sorted(by_class):
        class_groups = by_class[label]
        rng.shuffle(class_groups)
        total = sum(len(group) for group in class_groups)
        target = round(total * val_fraction)
        if len(class_groups) >= 2:
            target = max(target, 1)

        # Take whole groups that fit in the target, in shuffled order, so a large
        # duplicate group cannot swell the validation part. When none fits, the
        # smallest group goes to val. One group always stays in train.
        chosen: list[int] = []
        taken = 0
        for index, group in enumerate(class_groups):
            if len(chosen) == len(class_groups) - 1 or taken >= target:
                break
            if taken + len(group) <= target:
                chosen.append(index)
                taken += len(group)
        if not chosen and target > 0 and len(class_groups) >= 2:
            chosen.append(min(range(len(class_groups)), key=lambda i: len(class_groups[i])))
        chosen_set = set(chosen)
        for index, group in enumerate(class_groups):
            (val if index in chosen_set else train).extend(group)
    return train, val
