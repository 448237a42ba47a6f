"""Hyperparameter sweeps: one base recipe, a list or grid of overrides, one run folder per step.

A sweep file looks like::

    base: ../recipes/quickstart.yaml   # relative to the sweep file
    output: runs/sweep-quickstart      # relative to the current folder
    set: {train.epochs: 3}             # applied to every step
    grid:                              # every combination, in order
      optim.lr: [1.0e-4, 5.0e-5]
      train.batch_size: [16, 32]
    # or, instead of grid, an explicit list:
    # steps:
    #   - {optim.lr: 1.0e-4}
    #   - {optim.lr: 5.0e-5, augment.randaugment_magnitude: 5}

Steps run one after another. A step whose run folder already has a
summary.json is skipped; one that stopped part-way resumes from its last
checkpoint. The history table (``history.md`` and ``history.csv``) lists each
step, what changed from the previous step, validation and test top-1 and the
training time, like a fine-tuning log.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from zoo_core.recipe import RecipeError, load_recipe

logger = logging.getLogger(__name__)

SWEEP_KEYS = {"base", "output", "set", "grid", "steps"}


@dataclass
class SweepStep:
    """One run of a sweep: its index, overrides and folder."""

    index: int
    overrides: dict[str, Any]
    run_dir: Path


@dataclass
class Sweep:
    """A parsed sweep file."""

    base: Path
    output: Path
    common: dict[str, Any]
    steps: list[SweepStep]


def _format_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _slug(overrides: dict[str, Any]) -> str:
    text = ",".join(f"{key.split('.')[-1]}={_format_value(value)}" for key, value in overrides.items())
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", text)[:80] or "base"


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; every step's recipe is validated before anything runs."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"sweep file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path} must hold a YAML mapping with keys {', '.join(sorted(SWEEP_KEYS))}")
    unknown = set(data) - SWEEP_KEYS
    if unknown:
        raise RecipeError(f"unknown key(s) {', '.join(sorted(unknown))} in {path}; allowed: {', '.join(sorted(SWEEP_KEYS))}")
    if "base" not in data:
        raise RecipeError(f"missing key 'base' in {path}: name the base recipe file")
    if ("grid" in data) == ("steps" in data):
        raise RecipeError(f"{path} needs exactly one of 'grid' (combinations) or 'steps' (a list of overrides)")

    base = (path.parent / data["base"]).resolve()
    output = Path(data.get("output") or Path("runs") / f"sweep-{path.stem}")
    common = dict(data.get("set") or {})
    if "grid" in data:
        grid = data["grid"]
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise RecipeError(f"'grid' in {path} must map each key to a non-empty list of values")
        keys = list(grid)
        combos = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    else:
        combos = data["steps"]
        if not isinstance(combos, list) or not all(isinstance(step, dict) for step in combos):
            raise RecipeError(f"'steps' in {path} must be a list of mappings KEY: VALUE")

    steps = []
    for index, overrides in enumerate(combos, start=1):
        run_dir = output / f"{index:03d}-{_slug(overrides)}"
        steps.append(SweepStep(index, dict(overrides), run_dir))
        # Validate now, so a typo in step 7 does not surface hours into the sweep.
        step_recipe(base, common, overrides, index)
    return Sweep(base, output, common, steps)


def _override_list(settings: dict[str, Any]) -> list[str]:
    return [f"{key}={json.dumps(value)}" for key, value in settings.items()]


def step_recipe(base: Path, common: dict[str, Any], overrides: dict[str, Any], index: int):
    try:
        recipe = load_recipe(base, _override_list(common) + _override_list(overrides))
    except RecipeError as error:
        raise RecipeError(f"sweep step {index}: {error}") from None
    return recipe.model_copy(update={"name": f"{recipe.name}-step{index:03d}"})


def changes(previous: dict[str, Any] | None, current: dict[str, Any]) -> str:
    """Describe what differs between two steps' overrides."""
    if previous is None:
        return ", ".join(f"{k}={_format_value(v)}" for k, v in current.items()) or "base recipe"
    parts = []
    for key in list(dict.fromkeys([*previous, *current])):
        if previous.get(key) != current.get(key):
            parts.append(f"{key}: {_format_value(previous.get(key))} -> {_format_value(current.get(key))}")
    return ", ".join(parts) or "no change"


def history_rows(sweep: Sweep) -> list[dict[str, Any]]:
    rows = []
    previous = None
    for step in sweep.steps:
        summary_path = step.run_dir / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
        rows.append({
            "step": step.index,
            "run": step.run_dir.name,
            "changes": changes(previous, step.overrides),
            "val_top1": summary["val"]["top1"] if summary else None,
            "val_images": summary["val"]["num_images"] if summary else None,
            "test_top1": summary["test"]["top1"] if summary else None,
            "test_images": summary["test"]["num_images"] if summary else None,
            "best_epoch": summary["best_epoch"] if summary else None,
            "train_time_s": summary["train_time_s"] if summary else None,
            "status": "done" if summary else "not finished",
        })
        previous = step.overrides
    return rows


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def write_history(sweep: Sweep) -> tuple[Path, Path]:
    """Write history.md and history.csv into the sweep's output folder."""
    rows = history_rows(sweep)
    sweep.output.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    csv_path = sweep.output / "history.csv"
    csv_path.write_text(buffer.getvalue())

    lines = [
        f"# Sweep history: {sweep.base.name}",
        "",
        f"Base recipe `{sweep.base}`; every step also sets "
        + (", ".join(f"`{k}={_format_value(v)}`" for k, v in sweep.common.items()) or "nothing else") + ".",
        "Validation is the held-out part of Training; test is the Testing split, never used to pick an epoch.",
        "",
        "| step | changes from previous step | val top-1 | test top-1 | best epoch | training time | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        time_text = "-" if row["train_time_s"] is None else f"{row['train_time_s']:.1f} s"
        val = _percent(row["val_top1"]) + (f" (n={row['val_images']})" if row["val_images"] else "")
        test = _percent(row["test_top1"]) + (f" (n={row['test_images']})" if row["test_images"] else "")
        lines.append(f"| {row['step']} | {row['changes']} | {val} | {test} | {row['best_epoch'] or '-'} | "
                     f"{time_text} | {row['status']} |")
    md_path = sweep.output / "history.md"
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, csv_path


def run_sweep(path: str | Path, progress: bool = True) -> tuple[Sweep, list[str]]:
    """Run every unfinished step of a sweep and write its history; return the sweep and what each step did."""
    from zoo_core.train.run import resume_run, train_recipe

    sweep = load_sweep(path)
    actions = []
    for step in sweep.steps:
        if (step.run_dir / "summary.json").is_file():
            actions.append(f"step {step.index}: finished earlier, skipped ({step.run_dir})")
            continue
        if (step.run_dir / "checkpoints" / "last").exists():
            actions.append(f"step {step.index}: resumed ({step.run_dir})")
            logger.info("sweep step %d: resuming %s", step.index, step.run_dir)
            resume_run(step.run_dir, progress=progress)
        else:
            actions.append(f"step {step.index}: trained ({step.run_dir})")
            logger.info("sweep step %d of %d: %s", step.index, len(sweep.steps), step.run_dir)
            if step.run_dir.exists():
                # A step killed before its first checkpoint leaves only recipe.yaml: start it again.
                for leftover in ("recipe.yaml", "metrics.jsonl"):
                    (step.run_dir / leftover).unlink(missing_ok=True)
            train_recipe(step_recipe(sweep.base, sweep.common, step.overrides, step.index), step.run_dir, progress=progress)
        write_history(sweep)
    write_history(sweep)
    return sweep, actions


__all__ = ["Sweep", "SweepStep", "load_sweep", "run_sweep", "write_history", "changes"]
