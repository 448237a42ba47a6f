"""Datasets: the Kaggle folder layout, the bundled real sample and the phantom.

Each builder returns :class:`DatasetSplits`: train and a stratified, seeded
validation part carved out of Training, and Testing kept apart for the final
evaluation only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from zoo_core.data.classes import CLASS_NAMES
from zoo_core.data.dedup import apply_dedup
from zoo_core.data.duplicates import (
    DuplicatePair,
    ImageRecord,
    duplicate_groups,
    find_duplicate_pairs,
    hash_cache_path,
    hash_images,
    summarize_pairs,
)
from zoo_core.data.folder import (
    TEST_DIR_NAMES,
    TRAIN_DIR_NAMES,
    BadFile,
    DatasetError,
    Sample,
    check_class_sets,
    find_split_dir,
    format_bad_files,
    scan_class_folders,
    to_samples,
)
from zoo_core.data.images import load_image
from zoo_core.data.phantom import generate_phantom_dataset, phantom_root
from zoo_core.data.splits import stratified_split
from zoo_core.paths import SAMPLE_DIR, cache_dir

logger = logging.getLogger(__name__)


@dataclass
class DatasetSplits:
    """Train, validation and test samples of one dataset, with what was left out and why."""

    name: str
    root: str
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    class_names: tuple[str, ...] = CLASS_NAMES
    skipped: list[BadFile] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """Return image counts per split and class."""
        result = {}
        for split in ("train", "val", "test"):
            samples = getattr(self, split)
            per_class = {name: 0 for name in self.class_names}
            for sample in samples:
                per_class[self.class_names[sample.label]] += 1
            result[split] = {"total": len(samples), **per_class}
        return result

    def describe(self) -> dict[str, Any]:
        """Return the JSON-ready record of the data that a run used."""
        return {
            "name": self.name,
            "root": self.root,
            "class_names": list(self.class_names),
            "counts": self.counts(),
            "skipped_files": [{"path": bad.path, "reason": bad.reason} for bad in self.skipped],
            **self.notes,
        }


def _drop_bad_files(
    pools: dict[str, list[Sample]], records: list[ImageRecord], skip_bad_images: bool
) -> list[BadFile]:
    bad = [BadFile(record.path, record.error) for record in records if record.error is not None]
    if not bad:
        return []
    if not skip_bad_images:
        raise DatasetError(
            f"{len(bad)} file(s) cannot be read as images:\n{format_bad_files(bad)}\n"
            "Fix or remove them, or set data.skip_bad_images: true to skip them "
            "(each skipped file is then recorded in the run's summary.json)."
        )
    bad_paths = {item.path for item in bad}
    for item in bad:
        logger.warning("skipping unreadable image %s: %s", item.path, item.reason)
    for split, split_samples in pools.items():
        pools[split] = [s for s in split_samples if s.path not in bad_paths]
        present = {s.label for s in pools[split]}
        for label, name in enumerate(CLASS_NAMES):
            if label not in present:
                raise DatasetError(
                    f"after skipping unreadable files, class '{name}' has no images left in the {split} split"
                )
    return bad


def _duplicate_notes(pairs: list[DuplicatePair], near_threshold: int | None) -> dict[str, Any]:
    method = "exact: identical decoded RGB pixels"
    if near_threshold is not None:
        method += f"; near: 64-bit pHash within {near_threshold} bits"
    notes: dict[str, Any] = {
        "near_threshold": near_threshold,
        "method": method,
        "pairs": summarize_pairs(pairs),
        "cross_label_pairs": [pair.to_dict() for pair in pairs if pair.cross_label],
    }
    counts = notes["pairs"]
    if counts["cross_split"]:
        logger.warning(
            "%d duplicate pair(s) span Training and Testing; run `zoo data audit` for the list, "
            "and set data.dedup to remove_test or regroup to keep them out of the test metrics",
            counts["cross_split"],
        )
    if counts["cross_label"]:
        logger.warning("%d duplicate pair(s) carry different labels (listed in summary.json)", counts["cross_label"])
    return notes


def build_splits(
    name: str,
    root: Path,
    train_pool: list[Sample],
    test: list[Sample],
    data_config,
    seed: int,
    progress: bool = False,
    near_duplicates: bool = True,
) -> DatasetSplits:
    """Check the images, apply ``data.dedup``, then split Training into train and validation.

    Every image is decoded once, and later runs reuse the hash cache for files
    whose size and modification time are unchanged. Unreadable files stop the
    run with their list or, with ``data.skip_bad_images``, are skipped and
    recorded. The same pass hashes the images, so duplicates across the splits
    can be removed or moved (``data.dedup``) and duplicate groups stay on one
    side of the validation split. ``notes`` records the duplicate counts and
    every removed or moved file. With ``near_duplicates=False`` only exact
    duplicates count.
    """
    near_threshold = data_config.near_threshold if near_duplicates else None
    pools = {"Training": list(train_pool), "Testing": list(test)}
    records = hash_images(pools, progress=progress, cache_path=hash_cache_path(root))
    skipped = _drop_bad_files(pools, records, data_config.skip_bad_images)

    kept = {sample.path for samples in pools.values() for sample in samples}
    pairs = find_duplicate_pairs([r for r in records if r.path in kept], near_threshold)
    notes: dict[str, Any] = {"duplicates": _duplicate_notes(pairs, near_threshold)}
    notes["dedup"] = apply_dedup(pools, pairs, data_config.dedup)

    # Pairs involving removed test images no longer matter for the validation split.
    remaining = {sample.path for sample in pools["Training"]}
    train_pairs = [p for p in pairs if p.first.path in remaining and p.second.path in remaining]
    train, val = stratified_split(pools["Training"], data_config.val_fraction, seed, duplicate_groups(train_pairs))
    return DatasetSplits(name, str(root), train, val, pools["Testing"], skipped=skipped, notes=notes)


def scan_kaggle_root(root: Path) -> tuple[list[Sample], list[Sample]]:
    """Return (training pool, testing) samples of a Kaggle-layout folder."""
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder not found: {root}; set data.root to the folder holding Training/ and Testing/"
        )
    train_dir = find_split_dir(root, TRAIN_DIR_NAMES)
    test_dir = find_split_dir(root, TEST_DIR_NAMES)
    if train_dir is None or test_dir is None:
        missing = "Training" if train_dir is None else "Testing"
        raise DatasetError(
            f"{root} has no {missing}/ folder; expected the Kaggle layout Training/<class>/* and "
            "Testing/<class>/* (run `zoo data download` to fetch the dataset)"
        )
    per_split = {"Training": scan_class_folders(train_dir), "Testing": scan_class_folders(test_dir)}
    check_class_sets(per_split)
    return to_samples(per_split["Training"]), to_samples(per_split["Testing"])


def build_kaggle(data_config, seed: int, progress: bool = False) -> DatasetSplits:
    """Build the Kaggle Brain Tumor MRI dataset from ``data.root`` (Training/ and Testing/)."""
    if not data_config.root:
        raise DatasetError(
            "data.root is not set; point it at the Kaggle Brain Tumor MRI folder "
            "(the one holding Training/ and Testing/), e.g. --set data.root=~/data/brain-tumor-mri"
        )
    root = Path(data_config.root).expanduser()
    train_pool, test = scan_kaggle_root(root)
    return build_splits("kaggle", root, train_pool, test, data_config, seed, progress)


def build_sample(data_config, seed: int, progress: bool = False) -> DatasetSplits:
    """Build the bundled 17-image sample.

    The sample is one folder per class. The last file of each class (by name)
    is its Testing image; the rest form the training pool.
    """
    classes = scan_class_folders(SAMPLE_DIR)
    train_pool: list[Sample] = []
    test: list[Sample] = []
    for sample in to_samples(classes):
        is_last = sample.path == str(classes[CLASS_NAMES[sample.label]][-1])
        (test if is_last else train_pool).append(sample)
    return build_splits("sample", SAMPLE_DIR, train_pool, test, data_config, seed, progress)


def build_phantom(data_config, seed: int, progress: bool = False) -> DatasetSplits:
    """Generate (once, cached) and load the procedural phantom dataset."""
    size = 128
    root = phantom_root(cache_dir(), data_config.phantom_images_per_class, size, seed)
    generate_phantom_dataset(root, data_config.phantom_images_per_class, size, seed)
    train_pool, test = scan_kaggle_root(root)
    # Phantom slices share one head template, so their pHashes sit a few bits
    # apart without any copying; only exact duplicates are checked there.
    splits = build_splits("phantom", root, train_pool, test, data_config, seed, progress, near_duplicates=False)
    splits.notes["phantom"] = {"images_per_class": data_config.phantom_images_per_class, "size": size, "seed": seed}
    return splits


def samples_from_folder(path: Path) -> tuple[list[Sample], str]:
    """Read the evaluation images of a folder for ``zoo eval --data``.

    A Kaggle-layout folder gives its Testing split; a folder of class folders
    gives all of its images.
    """
    if not path.is_dir():
        raise DatasetError(f"dataset folder not found: {path}")
    test_dir = find_split_dir(path, TEST_DIR_NAMES)
    if test_dir is not None:
        return to_samples(scan_class_folders(test_dir)), f"{test_dir.name}"
    return to_samples(scan_class_folders(path)), "all"


class ImageDataset(torch.utils.data.Dataset):
    """Samples read with the shared loader and passed through a transform."""

    def __init__(self, samples: list[Sample], transform: Callable | None = None):
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        image = load_image(sample.path)
        if self.transform is not None:
            image = self.transform(image)
        return image, sample.label
