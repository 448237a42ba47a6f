"""Procedural MRI-like phantom slices with class-specific lesions.

Each slice has a skull ring, brain tissue with smooth texture, two ventricles
and, depending on the class, a lesion whose place and look follow the tumour
type: glioma as an irregular intra-axial mass with a bright rim and dark core,
meningioma as a round homogeneous mass against the inner skull, pituitary as
a small bright mass at the sella on the midline below the ventricles, and
none for notumor. The classes are learnable from pixels, so a training run
that does not lower the loss on them is broken.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from zoo_core.data.classes import CLASS_NAMES

logger = logging.getLogger(__name__)

PHANTOM_VERSION = 1
_DONE_MARKER = ".phantom-complete"


def _ellipse(x, y, cx, cy, rx, ry, angle=0.0):
    cos, sin = np.cos(angle), np.sin(angle)
    dx, dy = x - cx, y - cy
    u = (dx * cos + dy * sin) / rx
    v = (-dx * sin + dy * cos) / ry
    return u * u + v * v


def _smooth_texture(x, y, rng, terms=4):
    texture = np.zeros_like(x)
    for _ in range(terms):
        fx, fy = rng.uniform(1.0, 5.0, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        texture += np.sin(fx * x * np.pi + fy * y * np.pi + phase)
    return texture / terms


def render_slice(label: int, rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """Render one grayscale slice (uint8, size x size) of class ``CLASS_NAMES[label]``."""
    coords = np.linspace(-1.0, 1.0, size)
    x, y = np.meshgrid(coords, coords)
    cx, cy = rng.uniform(-0.05, 0.05, size=2)
    rx = rng.uniform(0.78, 0.88)
    ry = rx * rng.uniform(0.88, 1.05)
    angle = rng.uniform(-0.2, 0.2)

    head = _ellipse(x, y, cx, cy, rx, ry, angle)
    brain = _ellipse(x, y, cx, cy, rx * 0.88, ry * 0.88, angle)
    image = np.zeros_like(x)
    image[head <= 1.0] = rng.uniform(0.8, 0.95)
    inside = brain <= 1.0
    tissue = rng.uniform(0.4, 0.5) + 0.05 * _smooth_texture(x, y, rng)
    image[inside] = tissue[inside]

    for side in (-1.0, 1.0):
        ventricle = _ellipse(x, y, cx + side * 0.12 * rx, cy - 0.05, 0.06 * rx, 0.17 * ry, side * 0.3 + angle)
        image[ventricle <= 1.0] = rng.uniform(0.1, 0.2)

    name = CLASS_NAMES[label]
    if name == "glioma":
        theta = rng.uniform(0, 2 * np.pi)
        distance = rng.uniform(0.3, 0.5) * rx
        lx, ly = cx + distance * np.cos(theta), cy + distance * np.sin(theta)
        radius = rng.uniform(0.13, 0.2)
        lobes = sum(
            _ellipse(x, y, lx + dx, ly + dy, radius, radius * rng.uniform(0.6, 1.0), rng.uniform(0, np.pi))
            <= 1.0
            for dx, dy in rng.uniform(-0.06, 0.06, size=(3, 2))
        ) > 0
        core = _ellipse(x, y, lx, ly, radius * 0.5, radius * 0.5) <= 1.0
        image[lobes & inside] = rng.uniform(0.75, 0.9)
        image[core & inside] = rng.uniform(0.25, 0.35)
    elif name == "meningioma":
        theta = rng.uniform(0, 2 * np.pi)
        radius = rng.uniform(0.11, 0.16)
        lx = cx + (rx * 0.88 - radius * 0.7) * np.cos(theta)
        ly = cy + (ry * 0.88 - radius * 0.7) * np.sin(theta)
        mass = _ellipse(x, y, lx, ly, radius, radius) <= 1.0
        image[mass & (head <= 1.0)] = rng.uniform(0.85, 0.98)
    elif name == "pituitary":
        radius = rng.uniform(0.06, 0.09)
        mass = _ellipse(x, y, cx + rng.uniform(-0.02, 0.02), cy + 0.42 * ry, radius * 1.2, radius) <= 1.0
        image[mass] = rng.uniform(0.85, 0.98)

    image += rng.normal(0.0, 0.03, size=image.shape)
    return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)


def phantom_root(cache: Path, per_class: int, size: int, seed: int) -> Path:
    return cache / "phantom" / f"v{PHANTOM_VERSION}-n{per_class}-s{size}-seed{seed}"


def generate_phantom_dataset(root: Path, per_class: int, size: int = 128, seed: int = 0) -> Path:
    """Write a Kaggle-layout phantom dataset under ``root`` unless a complete one is there.

    Training gets ``per_class`` JPEG slices per class and Testing a quarter of
    that (at least two). The tree is written to a temporary folder and renamed
    into place, so an interrupted run never leaves a partial dataset behind.
    """
    if (root / _DONE_MARKER).exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
    counts = {"Training": per_class, "Testing": max(2, per_class // 4)}
    for split_index, (split, count) in enumerate(counts.items()):
        for label, name in enumerate(CLASS_NAMES):
            folder = staging / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                rng = np.random.default_rng([seed, split_index, label, index])
                pixels = render_slice(label, rng, size)
                Image.fromarray(pixels, mode="L").save(folder / f"{split[:2]}-{name[:2]}_{index:04d}.jpg", quality=92)
    (staging / _DONE_MARKER).write_text(f"phantom v{PHANTOM_VERSION}\n")
    try:
        staging.rename(root)
    except OSError:
        # Another process finished the same dataset first; use theirs.
        shutil.rmtree(staging, ignore_errors=True)
        if not (root / _DONE_MARKER).exists():
            raise
    logger.info("generated phantom dataset at %s", root)
    return root
