"""Policies for duplicates that cross the Training/Testing split (recipe ``data.dedup``).

* ``off``: keep both splits as they are; the duplicates are only counted.
* ``remove_test``: drop every Testing image that has an exact or near
  duplicate in Training.
* ``regroup``: move each duplicate group that spans both splits wholly into
  the split that contains most of its members (Training on a tie), so that no
  group is on both sides.

Every removed or moved file is returned with the reason, for the run summary.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from zoo_core.data.classes import CLASS_NAMES
from zoo_core.data.duplicates import DuplicatePair, duplicate_groups
from zoo_core.data.folder import DatasetError, Sample

logger = logging.getLogger(__name__)

__all__ = ["DEDUP_MODES", "apply_dedup"]

DEDUP_MODES = ("off", "remove_test", "regroup")
TRAIN, TEST = "Training", "Testing"


def _remove_test(pools: dict[str, list[Sample]], pairs: list[DuplicatePair]) -> list[dict]:
    # The closest Training duplicate of each Testing image explains its removal.
    match: dict[str, DuplicatePair] = {}
    for pair in pairs:
        if not pair.cross_split:
            continue
        test_side = pair.first if pair.first.split == TEST else pair.second
        known = match.get(test_side.path)
        if known is None or pair.distance < known.distance:
            match[test_side.path] = pair

    removed = []
    for path in sorted(match):
        pair = match[path]
        test_side, train_side = (pair.first, pair.second) if pair.first.path == path else (pair.second, pair.first)
        removed.append(
            {
                "path": path,
                "class": test_side.class_name,
                "reason": f"{pair.kind} duplicate of a Training image",
                "duplicate_of": train_side.path,
                "duplicate_class": train_side.class_name,
                "kind": pair.kind,
                "distance": pair.distance,
            }
        )
    pools[TEST] = [sample for sample in pools[TEST] if sample.path not in match]
    return removed


def _regroup(pools: dict[str, list[Sample]], pairs: list[DuplicatePair]) -> list[dict]:
    groups = duplicate_groups(pairs)
    split_of = {sample.path: split for split, samples in pools.items() for sample in samples}
    members: dict[str, list[str]] = defaultdict(list)
    for path, group in groups.items():
        if path in split_of:
            members[group].append(path)

    destination: dict[str, str] = {}
    for group, paths in members.items():
        in_test = sum(split_of[path] == TEST for path in paths)
        in_train = len(paths) - in_test
        if in_test and in_train:
            target = TEST if in_test > in_train else TRAIN
            for path in paths:
                if split_of[path] != target:
                    destination[path] = target

    moved = []
    by_path = {sample.path: sample for samples in pools.values() for sample in samples}
    for path in sorted(destination):
        source, target = split_of[path], destination[path]
        group_size = len(members[groups[path]])
        moved.append(
            {
                "path": path,
                "class": CLASS_NAMES[by_path[path].label],
                "from": source,
                "to": target,
                "group": groups[path],
                "reason": f"duplicate group of {group_size} images spans both splits; most are in {target}",
            }
        )
    for split in (TRAIN, TEST):
        kept = [sample for sample in pools[split] if sample.path not in destination]
        arriving = [by_path[path] for path, target in sorted(destination.items()) if target == split]
        pools[split] = kept + arriving
    return moved


def _check_classes_left(pools: dict[str, list[Sample]], mode: str) -> None:
    for split, samples in pools.items():
        present = {sample.label for sample in samples}
        for label, name in enumerate(CLASS_NAMES):
            if label not in present:
                raise DatasetError(
                    f"data.dedup={mode} left class '{name}' with no images in the {split} split; "
                    "use data.dedup=off, or another mode, to keep this dataset usable"
                )


def apply_dedup(pools: dict[str, list[Sample]], pairs: list[DuplicatePair], mode: str) -> dict:
    """Apply a ``data.dedup`` mode to the Training and Testing pools in place.

    Returns the record for the run summary: the mode and every removed or moved
    file with the reason.
    """
    if mode not in DEDUP_MODES:
        raise DatasetError(f"invalid data.dedup {mode!r}; use one of: {', '.join(DEDUP_MODES)}")
    removed: list[dict] = []
    moved: list[dict] = []
    if mode == "remove_test":
        removed = _remove_test(pools, pairs)
    elif mode == "regroup":
        moved = _regroup(pools, pairs)
    if removed or moved:
        _check_classes_left(pools, mode)
        logger.info("data.dedup=%s: removed %d and moved %d image(s)", mode, len(removed), len(moved))
    return {"mode": mode, "removed_count": len(removed), "moved_count": len(moved), "removed": removed, "moved": moved}
