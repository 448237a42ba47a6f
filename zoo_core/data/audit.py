"""Leakage and integrity audit of a dataset folder (``zoo data audit``).

The audit scans a Kaggle-layout folder (``Training/`` and ``Testing/``) or a
plain folder of class folders and decodes each image once. It reports image
counts, sizes, formats and colour modes per split and class, every unreadable
file with its reason, and every exact or near-duplicate pair within a split,
across splits and across labels. :mod:`zoo_core.data.duplicates` describes the
hashes and the threshold.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo_core.data.classes import CLASS_NAMES
from zoo_core.data.duplicates import (
    DEFAULT_NEAR_THRESHOLD,
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
    DatasetError,
    Sample,
    check_class_sets,
    find_split_dir,
    scan_class_folders,
    to_samples,
)

logger = logging.getLogger(__name__)

__all__ = ["AuditReport", "audit_folder", "scan_splits"]


@dataclass
class AuditReport:
    """Result of auditing one dataset folder."""

    root: str
    near_threshold: int
    records: list[ImageRecord]
    pairs: list[DuplicatePair]
    seconds: float = 0.0
    splits: list[str] = field(default_factory=list)
    layout_problems: list[str] = field(default_factory=list)

    @property
    def unreadable(self) -> list[ImageRecord]:
        return [record for record in self.records if record.error is not None]

    @property
    def leakage(self) -> bool:
        """True when any duplicate pair spans two splits or two labels."""
        return any(pair.cross_split or pair.cross_label for pair in self.pairs)

    def class_stats(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Return per split and class: image count, unreadable count, sizes, formats and modes."""
        stats: dict[str, dict[str, dict[str, Any]]] = {}
        for split in self.splits:
            stats[split] = {}
            for label, name in enumerate(CLASS_NAMES):
                records = [r for r in self.records if r.split == split and r.label == label]
                if not records:
                    continue
                readable = [r.info for r in records if r.info is not None]
                sizes = Counter(f"{info.width}x{info.height}" for info in readable)
                stats[split][name] = {
                    "files": len(records),
                    "unreadable": len(records) - len(readable),
                    "min_size": _extreme_size(readable, min),
                    "max_size": _extreme_size(readable, max),
                    "common_sizes": dict(sizes.most_common(3)),
                    "distinct_sizes": len(sizes),
                    "formats": dict(Counter(info.format for info in readable).most_common()),
                    "modes": dict(Counter(info.mode for info in readable).most_common()),
                }
        return stats

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready report (``zoo data audit --json``)."""
        groups = duplicate_groups(self.pairs)
        return {
            "root": self.root,
            "images": len(self.records),
            "near_threshold": self.near_threshold,
            "method": "exact: identical decoded RGB pixels; near: 64-bit pHash Hamming distance <= near_threshold",
            "seconds": round(self.seconds, 2),
            "leakage": self.leakage,
            "layout_problems": self.layout_problems,
            "splits": self.class_stats(),
            "unreadable": [{"path": r.path, "split": r.split, "class": r.class_name, "reason": r.error} for r in self.unreadable],
            "duplicate_counts": {**summarize_pairs(self.pairs), "groups": len(set(groups.values()))},
            "pairs": [pair.to_dict() for pair in self.pairs],
        }

    def format_text(self) -> str:
        """Return the human-readable report."""
        lines = [f"Audit of {self.root}: {len(self.records)} files, {self.seconds:.1f} s"]
        if self.layout_problems:
            lines.append(f"\nLayout problems (training would stop on these): {len(self.layout_problems)}")
            lines.extend(f"  {problem}" for problem in self.layout_problems)
        for split, classes in self.class_stats().items():
            lines.append(f"\n{split}")
            for name, item in classes.items():
                modes = ", ".join(f"{mode} {count}" for mode, count in item["modes"].items())
                lines.append(
                    f"  {name:<11} {item['files']:>5} files  sizes {item['min_size']} to {item['max_size']} "
                    f"({item['distinct_sizes']} distinct)  modes: {modes or '-'}"
                )

        lines.append(f"\nUnreadable files: {len(self.unreadable)}")
        lines.extend(f"  {r.path}: {r.error}" for r in self.unreadable)

        counts = summarize_pairs(self.pairs)
        lines.append(
            f"\nDuplicate pairs (near = pHash within {self.near_threshold} of 64 bits): "
            f"{counts['exact']} exact, {counts['near']} near; {counts['within_split']} within a split, "
            f"{counts['cross_split']} across splits, {counts['cross_label']} across labels"
        )
        for scope, title in (("cross_split", "Across splits"), ("cross_label", "Across labels"), ("within_split", "Within a split")):
            selected = [pair for pair in self.pairs if scope in pair.scopes]
            if selected:
                lines.append(f"{title}:")
                lines.extend(_format_pair(pair) for pair in selected)
        return "\n".join(lines)


def _extreme_size(infos, pick) -> str | None:
    if not infos:
        return None
    chosen = pick(infos, key=lambda info: (info.width * info.height, info.width))
    return f"{chosen.width}x{chosen.height}"


def _format_pair(pair: DuplicatePair) -> str:
    first, second = pair.first, pair.second
    return (
        f"  {pair.kind:<5} d={pair.distance:<2} {first.path} [{first.split}/{first.class_name}]"
        f"  <->  {second.path} [{second.split}/{second.class_name}]"
    )


def scan_splits(root: Path, problems: list[str] | None = None) -> dict[str, list[Sample]]:
    """Return the samples per split of a Kaggle-layout folder, or ``{"all": ...}`` for a folder of class folders.

    Raises :class:`DatasetError` for the same layout problems as training:
    unknown class folders, empty classes and class sets that differ between
    splits. With a ``problems`` list, those are appended there instead and the
    folders that can be read are still returned.
    """
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    train_dir = find_split_dir(root, TRAIN_DIR_NAMES)
    test_dir = find_split_dir(root, TEST_DIR_NAMES)
    if train_dir is None and test_dir is None:
        return {"all": to_samples(scan_class_folders(root, problems))}

    per_split = {}
    for split_dir in (train_dir, test_dir):
        if split_dir is not None:
            per_split[split_dir.name] = scan_class_folders(split_dir, problems)
    check_class_sets(per_split, problems)
    return {split: to_samples(classes) for split, classes in per_split.items()}


def audit_folder(
    root: str | Path,
    near_threshold: int = DEFAULT_NEAR_THRESHOLD,
    workers: int | None = None,
    progress: bool = False,
    use_cache: bool = True,
) -> AuditReport:
    """Scan ``root``, hash every image once and find unreadable files and duplicate pairs.

    With ``use_cache``, files unchanged since the last audit or training run
    on ``root`` (same size and modification time) reuse their cached hashes.
    """
    start = time.perf_counter()
    root = Path(root).expanduser()
    layout_problems: list[str] = []
    samples = scan_splits(root, layout_problems)
    cache_path = hash_cache_path(root) if use_cache else None
    records = hash_images(samples, workers=workers, progress=progress, cache_path=cache_path)
    pairs = find_duplicate_pairs(records, near_threshold)
    seconds = time.perf_counter() - start
    logger.info("audited %d files in %s in %.1f s", len(records), root, seconds)
    return AuditReport(str(root), near_threshold, records, pairs, seconds, list(samples), layout_problems)
