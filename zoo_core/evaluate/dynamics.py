"""Training dynamics of one run, computed from its ``metrics.jsonl``.

The figures describe how a run trained rather than where it ended. They are
the total training time, the epoch at which validation loss converged, how much
it still moved at the end of training, and the gap between validation and
training loss at the best epoch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_STABILITY_FRACTION", "DEFAULT_TOLERANCE", "read_metrics", "training_dynamics"]

# Validation loss within 5% of the run's best counts as converged.
DEFAULT_TOLERANCE = 0.05
# Stability looks at the last half of the epochs.
DEFAULT_STABILITY_FRACTION = 0.5

REQUIRED_KEYS = ("epoch", "train_loss", "val_loss", "elapsed_s")


def read_metrics(path: str | Path) -> list[dict]:
    """Read one JSON object per line from a ``metrics.jsonl`` file, ordered by epoch."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}; is this a finished run folder?")

    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number} is not valid JSON ({error}); fix or delete that line") from None
        missing = [key for key in REQUIRED_KEYS if key not in record]
        if missing:
            raise ValueError(f"{path}:{number} lacks the keys {missing}; every epoch line needs {list(REQUIRED_KEYS)}")
        records.append(record)
    return sorted(records, key=lambda record: record["epoch"])


def _stability(val_losses: np.ndarray, fraction: float) -> dict:
    """Measure the spread of epoch-to-epoch validation-loss changes over the last epochs."""
    count = len(val_losses)
    # At least three epochs, so there are two changes to take a spread of.
    window = min(count, max(3, math.ceil(count * fraction)))
    changes = np.diff(val_losses[count - window:])
    value = float(np.std(changes, ddof=1)) if len(changes) >= 2 else None
    return {"value": value, "fraction": fraction, "window_epochs": window}


def training_dynamics(
    records: list[dict],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    stability_fraction: float = DEFAULT_STABILITY_FRACTION,
) -> dict:
    """Summarise a run's epoch records.

    - ``train_time_s``: ``elapsed_s`` of the last epoch (training only, no final test).
    - ``convergence``: the first epoch whose validation loss is at most
      ``best_val_loss * (1 + tolerance)``, with its ``elapsed_s``.
    - ``stability``: sample standard deviation of the epoch-to-epoch change in
      validation loss over the last ``stability_fraction`` of the epochs (at
      least three epochs); None for runs of fewer than three epochs.
    - ``generalization_gap``: validation minus training loss at the best epoch
      (lowest validation loss).
    """
    if tolerance < 0:
        raise ValueError(f"tolerance={tolerance!r} must be >= 0, e.g. 0.05 for within 5% of the best loss")
    if not 0.0 < stability_fraction <= 1.0:
        raise ValueError(f"stability_fraction={stability_fraction!r} must be in (0, 1], e.g. 0.5 for the last half")
    if not records:
        raise ValueError("no epoch records: the run finished no epoch, so it has no training dynamics")

    epochs = np.array([record["epoch"] for record in records])
    val_losses = np.array([record["val_loss"] for record in records], dtype=np.float64)
    train_losses = np.array([record["train_loss"] for record in records], dtype=np.float64)
    elapsed = np.array([record["elapsed_s"] for record in records], dtype=np.float64)

    best = int(np.argmin(val_losses))
    threshold = val_losses[best] * (1.0 + tolerance)
    converged = int(np.flatnonzero(val_losses <= threshold)[0])

    return {
        "epochs_run": len(records),
        "train_time_s": float(elapsed[-1]),
        "best_epoch": int(epochs[best]),
        "best_val_loss": float(val_losses[best]),
        "convergence": {
            "epoch": int(epochs[converged]),
            "time_s": float(elapsed[converged]),
            "tolerance": tolerance,
            "rule": "first epoch with val_loss <= best_val_loss * (1 + tolerance)",
        },
        "stability": _stability(val_losses, stability_fraction),
        "generalization_gap": float(val_losses[best] - train_losses[best]),
    }
