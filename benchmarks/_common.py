"""Helpers shared by the benchmark scripts: a Kaggle-like JPEG folder, machine facts and summaries."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
from pathlib import Path

import numpy as np
from PIL import Image

from zoo_core.data.classes import CLASS_NAMES
from zoo_core.data.phantom import render_slice

DONE_MARKER = ".complete"


def make_kaggle_like(root: Path, train_per_class: int, test_per_class: int, size: int = 512, seed: int = 0) -> Path:
    """Write ``Training/<class>/*.jpg`` and ``Testing/<class>/*.jpg`` phantom slices, unless already there.

    The slices are grey content saved as 3-channel JPEGs (quality 92), mostly
    ``size`` x ``size``. Every eighth image is 3:4, so that the
    aspect-preserving paths are exercised too.
    """
    root = Path(root)
    if (root / DONE_MARKER).exists():
        return root
    for split, count in (("Training", train_per_class), ("Testing", test_per_class)):
        for label, name in enumerate(CLASS_NAMES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                rng = np.random.default_rng([seed, label, index, split == "Training"])
                pixels = render_slice(label, rng, size)
                image = Image.fromarray(pixels, mode="L").convert("RGB")
                if index % 8 == 7:
                    image = image.resize((size * 3 // 4, size), Image.BICUBIC)
                image.save(folder / f"{split[:2]}-{name[:2]}_{index:04d}.jpg", quality=92)
    (root / DONE_MARKER).write_text("kaggle-like benchmark data\n")
    return root


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """Return the date, CPU, cores, load and library versions that a benchmark ran with."""
    import PIL
    import timm
    import torch
    import torchvision

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "cpu": _cpu_model(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)),
        "load_average_1m_5m_15m": [round(value, 2) for value in os.getloadavg()],
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "pillow": PIL.__version__,
    }


def spread(values: list[float]) -> dict:
    """Return the median, minimum and maximum of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def write_result(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
