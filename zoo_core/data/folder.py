"""Scanning of Kaggle Brain Tumor MRI folders: ``Training/<class>/*`` and ``Testing/<class>/*``.

Folder-name variants map to the canonical classes. A folder that maps to no
class, an empty class folder or a class missing from one split is an error.
Hidden and system files are ignored. Every other file in a class folder is
returned, so that :func:`zoo_core.data.duplicates.hash_images` reports a
non-image file by name instead of it being dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from zoo_core.data.classes import CLASS_NAMES, accepted_folder_names, canonical_class
from zoo_core.data.images import is_ignored

logger = logging.getLogger(__name__)

TRAIN_DIR_NAMES = ("training", "train")
TEST_DIR_NAMES = ("testing", "test")


class DatasetError(ValueError):
    """A dataset folder that does not have the expected layout."""


@dataclass(frozen=True)
class Sample:
    """One image file and its class index in ``CLASS_NAMES``."""

    path: str
    label: int


@dataclass(frozen=True)
class BadFile:
    """A file that could not be read as an image, with the reason."""

    path: str
    reason: str


def find_split_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    """Return the child folder of ``root`` whose lower-cased name is one of ``names``.

    Raises :class:`DatasetError` when two children match (``Train`` and
    ``Training``), because either choice could silently drop half the data.
    """
    matches = [child for child in sorted(root.iterdir()) if child.is_dir() and child.name.lower() in names]
    if len(matches) > 1:
        raise DatasetError(
            f"{root} has several folders for one split: {', '.join(repr(m.name) for m in matches)}; "
            "merge them into one folder"
        )
    return matches[0] if matches else None


def _is_hidden(relative: Path) -> bool:
    return any(is_ignored(Path(part)) for part in relative.parts)


def scan_class_folders(split_dir: Path, problems: list[str] | None = None) -> dict[str, list[Path]]:
    """Map each canonical class to the files in its folder under ``split_dir``.

    Hidden and system files are ignored; every other file is returned, so that
    a non-image file is reported later instead of being dropped silently. A
    layout problem raises :class:`DatasetError`, unless a ``problems`` list is
    given: then the message is appended, the offending folder is skipped and
    the scan goes on (the audit reports everything it can in one pass).
    """

    def fail(message: str) -> None:
        if problems is None:
            raise DatasetError(message)
        problems.append(message)

    if not split_dir.is_dir():
        raise DatasetError(f"dataset folder not found: {split_dir}")
    found: dict[str, list[Path]] = {}
    folder_of: dict[str, Path] = {}
    for child in sorted(split_dir.iterdir()):
        if is_ignored(child) or not child.is_dir():
            continue
        name = canonical_class(child.name)
        if name is None:
            fail(f"folder '{child}' does not name a class; rename it to one of: {accepted_folder_names()}")
            continue
        if name in folder_of:
            fail(f"folders '{folder_of[name]}' and '{child}' both map to class '{name}'; merge them into one folder")
            continue
        files = sorted(p for p in child.rglob("*") if p.is_file() and not _is_hidden(p.relative_to(child)))
        if not files:
            fail(
                f"class folder '{child}' is empty; add its images or remove the folder "
                "(an empty class would shift the class indices)"
            )
            continue
        folder_of[name] = child
        found[name] = files
    if not found:
        fail(f"no class folders found in {split_dir}; expected one folder per class: {', '.join(CLASS_NAMES)}")
    return found


def check_class_sets(per_split: dict[str, dict[str, list[Path]]], problems: list[str] | None = None) -> None:
    """Raise when the splits do not contain the same four classes (or append to ``problems``)."""
    for split, classes in per_split.items():
        missing = [name for name in CLASS_NAMES if name not in classes]
        if missing:
            others = [s for s in per_split if s != split and all(m in per_split[s] for m in missing)]
            where = f" (present in {', '.join(others)})" if others else ""
            message = (
                f"class {', '.join(repr(m) for m in missing)} missing from the {split} split{where}; "
                f"every split needs the classes {', '.join(CLASS_NAMES)}"
            )
            if problems is None:
                raise DatasetError(message)
            problems.append(message)


def to_samples(classes: dict[str, list[Path]]) -> list[Sample]:
    """Turn a class-to-files map into samples in class order, then file order."""
    samples = []
    for label, name in enumerate(CLASS_NAMES):
        samples.extend(Sample(str(path), label) for path in classes.get(name, []))
    return samples


def format_bad_files(bad: list[BadFile]) -> str:
    """Format one indented ``path: reason`` line per bad file."""
    return "\n".join(f"  {item.path}: {item.reason}" for item in bad)
