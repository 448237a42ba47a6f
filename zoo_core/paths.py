"""Locations of the zoo's cache and bundled files."""

from __future__ import annotations

import os
from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent / "data" / "sample"


def cache_dir() -> Path:
    """Return the cache folder: ``ZOO_CACHE_DIR`` or ``~/.cache/brain-zoo``."""
    value = os.environ.get("ZOO_CACHE_DIR")
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "brain-zoo"
