"""Comparison report over run folders: tables, curves and the accuracy-versus-cost scatter.

Each run folder contributes its ``summary.json`` (test metrics, parameters),
``metrics.jsonl`` (training dynamics) and ``recipe.yaml`` (grouping). FLOPs
and batch-1 latency are measured here, once per distinct model and input
size, unless the run folder contains a ``bench.json`` written by ``zoo bench
--json`` for the same model and input size. Runs whose recipes differ only in
the seed form one group, reported as mean ± standard deviation.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import yaml

from zoo_core.evaluate.dynamics import (
    DEFAULT_STABILITY_FRACTION,
    DEFAULT_TOLERANCE,
    read_metrics,
    training_dynamics,
)

__all__ = ["CompareError", "RunResult", "find_runs", "load_run", "write_comparison"]

logger = logging.getLogger(__name__)

SEED_SUFFIX = re.compile(r"-seed\d+$")

RUN_COLUMNS = [
    "run", "group", "model", "img_size", "seed", "params", "gflops", "latency_ms", "latency_device",
    "train_time_s", "epochs_run", "best_epoch", "epochs_to_convergence", "time_to_convergence_s",
    "stability", "generalization_gap", "test_split", "test_images", "test_top1", "test_top1_ci_low",
    "test_top1_ci_high", "test_macro_f1", "test_macro_f1_ci_low", "test_macro_f1_ci_high",
    "test_balanced_accuracy", "test_ece", "val_top1", "val_images", "run_dir",
]

# Figures averaged over the seeds of a group.
GROUP_METRICS = [
    "train_time_s", "epochs_to_convergence", "stability", "generalization_gap", "test_top1",
    "test_macro_f1", "test_balanced_accuracy", "test_ece",
]


class CompareError(ValueError):
    """A run folder that cannot take part in a comparison."""


@dataclass
class RunResult:
    """Everything the comparison needs from one run folder."""

    run_dir: Path
    summary: dict
    recipe: dict
    metrics: list[dict]
    dynamics: dict
    efficiency: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def model(self) -> str:
        return self.summary["model"]["name"]

    @property
    def img_size(self) -> int:
        return int(self.summary["model"]["img_size"])

    @property
    def group_key(self) -> str:
        """The recipe without its seed, and without a ``-seedN`` suffix on its name."""
        recipe = {key: value for key, value in self.recipe.items() if key != "seed"}
        recipe["name"] = SEED_SUFFIX.sub("", str(recipe.get("name", "")))
        return json.dumps(recipe, sort_keys=True)


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Expand the given paths into run folders.

    A path with a ``summary.json`` is a run. A folder without one is replaced
    by its subfolders that have one, so ``runs/`` compares every finished run in it.
    """
    runs: list[Path] = []
    for path in map(Path, paths):
        if (path / "summary.json").is_file():
            runs.append(path)
            continue
        if not path.is_dir():
            raise CompareError(f"run folder not found: {path}")
        children = sorted(child for child in path.iterdir() if (child / "summary.json").is_file())
        if not children:
            raise CompareError(
                f"{path} has no summary.json and no subfolder with one; pass finished run folders "
                "(training writes summary.json at the end)"
            )
        runs.extend(children)

    unique = list(dict.fromkeys(path.resolve() for path in runs))
    return unique


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CompareError(f"{path} is not valid JSON: {error}") from None


def load_run(
    run_dir: str | Path,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    stability_fraction: float = DEFAULT_STABILITY_FRACTION,
) -> RunResult:
    """Read a finished run folder and compute its training dynamics."""
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise CompareError(f"{run_dir} has no summary.json; has its training finished?")
    summary = _read_json(summary_path)
    for key in ("model", "test"):
        if key not in summary:
            raise CompareError(f"{summary_path} lacks the key '{key}'; was it written by `zoo train`?")

    recipe_path = run_dir / "recipe.yaml"
    recipe = yaml.safe_load(recipe_path.read_text()) if recipe_path.is_file() else {}
    if not recipe:
        logger.warning("%s has no recipe.yaml; the run forms a group of its own", run_dir)
        recipe = {"name": run_dir.name, "run_dir": str(run_dir)}

    try:
        metrics = read_metrics(run_dir / "metrics.jsonl")
        dynamics = training_dynamics(metrics, tolerance=tolerance, stability_fraction=stability_fraction)
    except (FileNotFoundError, ValueError) as error:
        raise CompareError(str(error)) from None
    return RunResult(run_dir, summary, recipe, metrics, dynamics)


def _stored_bench(run: RunResult) -> dict | None:
    path = run.run_dir / "bench.json"
    if not path.is_file():
        return None
    stored = _read_json(path)
    if stored.get("model") != run.model or stored.get("img_size") != run.img_size:
        logger.warning("ignoring %s: it measures %s at %s, the run trained %s at %s", path,
                       stored.get("model"), stored.get("img_size"), run.model, run.img_size)
        return None
    return stored


def _model_kwargs(run: RunResult) -> dict:
    return dict((run.recipe.get("model") or {}).get("kwargs") or {})


def measure_efficiency(
    runs: Sequence[RunResult],
    *,
    with_latency: bool = True,
    device: str = "cpu",
    latency_runs: int = 20,
    warmup: int = 3,
    threads: int | None = None,
) -> None:
    """Fill ``run.efficiency`` with FLOPs and batch-1 latency, measuring each model and size once."""
    import torch

    from zoo_core.evaluate.bench import count_flops, device_name, measure_latency, resolve_device, torch_threads
    from zoo_core.models import create_model
    from zoo_core.recipe import ModelConfig

    resolved = resolve_device(device)
    cache: dict[str, dict] = {}
    for run in runs:
        stored = _stored_bench(run)
        if stored is not None:
            run.efficiency = {"flops": stored["flops"], "latency_ms": stored["latency_ms"]["median"],
                              "latency_device": f"{stored['device']} ({stored.get('device_name', '?')}), bench.json"}
            continue

        key = json.dumps([run.model, run.img_size, _model_kwargs(run)], sort_keys=True)
        if key not in cache:
            num_classes = len(run.summary.get("class_names") or run.summary["test"]["class_names"])
            # Random weights: FLOPs and latency do not depend on them, and nothing is downloaded.
            model = create_model(ModelConfig(name=run.model, kwargs=_model_kwargs(run)), num_classes=num_classes)
            model = model.to(resolved)
            entry = {"flops": count_flops(model, run.img_size, resolved), "latency_ms": None, "latency_device": None}
            if with_latency:
                logger.info("measuring %s at %dx%d on %s", run.model, run.img_size, run.img_size, resolved)
                with torch_threads(threads):
                    latency = measure_latency(model, run.img_size, resolved, warmup=warmup, runs=latency_runs)
                    used_threads = torch.get_num_threads()
                entry["latency_ms"] = latency["median"]
                entry["latency_device"] = f"{resolved} ({device_name(resolved)})"
                if resolved.type == "cpu":
                    plural = "" if used_threads == 1 else "s"
                    entry["latency_device"] = f"{resolved} ({device_name(resolved)}, {used_threads} thread{plural})"
            cache[key] = entry
        run.efficiency = dict(cache[key])


def _interval(report: dict | None, key: str) -> tuple[float | None, float | None]:
    values = (report or {}).get(f"{key}_ci")
    return (values[0], values[1]) if values else (None, None)


def run_row(run: RunResult, group: str) -> dict:
    """Collect one run's figures under the ``RUN_COLUMNS`` names."""
    test = run.summary.get("test") or {}
    val = run.summary.get("val") or {}
    dynamics = run.dynamics
    flops = run.efficiency.get("flops")
    top1_low, top1_high = _interval(test, "top1")
    f1_low, f1_high = _interval(test, "macro_f1")
    return {
        "run": run.name,
        "group": group,
        "model": run.model,
        "img_size": run.img_size,
        "seed": run.summary.get("seed", run.recipe.get("seed")),
        "params": run.summary["model"].get("params"),
        "gflops": flops / 1e9 if flops is not None else None,
        "latency_ms": run.efficiency.get("latency_ms"),
        "latency_device": run.efficiency.get("latency_device"),
        "train_time_s": dynamics["train_time_s"],
        "epochs_run": dynamics["epochs_run"],
        "best_epoch": dynamics["best_epoch"],
        "epochs_to_convergence": dynamics["convergence"]["epoch"],
        "time_to_convergence_s": dynamics["convergence"]["time_s"],
        "stability": dynamics["stability"]["value"],
        "generalization_gap": dynamics["generalization_gap"],
        "test_split": test.get("split"),
        "test_images": test.get("num_images"),
        "test_top1": test.get("top1"),
        "test_top1_ci_low": top1_low,
        "test_top1_ci_high": top1_high,
        "test_macro_f1": test.get("macro_f1"),
        "test_macro_f1_ci_low": f1_low,
        "test_macro_f1_ci_high": f1_high,
        "test_balanced_accuracy": test.get("balanced_accuracy"),
        "test_ece": test.get("ece"),
        "val_top1": val.get("top1"),
        "val_images": val.get("num_images"),
        "run_dir": str(run.run_dir),
    }


def _mean_std(values: list) -> tuple[float | None, float | None]:
    present = [float(value) for value in values if value is not None]
    if not present:
        return None, None
    mean = sum(present) / len(present)
    if len(present) < 2:
        return mean, None
    variance = sum((value - mean) ** 2 for value in present) / (len(present) - 1)
    return mean, math.sqrt(variance)


def group_rows(rows: list[dict]) -> list[dict]:
    """Average each group's runs: mean and sample standard deviation (None for one run)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)

    result = []
    for name, members in groups.items():
        first = members[0]
        row = {
            "group": name,
            "runs": len(members),
            "seeds": " ".join(str(member["seed"]) for member in members),
            "model": first["model"],
            "img_size": first["img_size"],
            "params": first["params"],
            "gflops": first["gflops"],
            # Latency is measured once per model and input size, so the seeds share it.
            "latency_ms": first["latency_ms"],
            "latency_device": first["latency_device"],
            "test_images": first["test_images"],
        }
        for key in GROUP_METRICS:
            row[f"{key}_mean"], row[f"{key}_std"] = _mean_std([member[key] for member in members])
        result.append(row)
    return result


def _group_labels(runs: Sequence[RunResult]) -> dict[str, str]:
    """Name each group after its recipe, adding model and size only where names collide."""
    keys = list(dict.fromkeys(run.group_key for run in runs))
    first_run = {key: next(run for run in runs if run.group_key == key) for key in keys}
    names = {key: SEED_SUFFIX.sub("", str(first_run[key].recipe.get("name") or first_run[key].name))
             for key in keys}

    labels = {}
    for number, key in enumerate(keys, start=1):
        label = names[key]
        twins = [other for other in keys if names[other] == label]
        if len(twins) > 1:
            differences = _recipe_differences(first_run[key], [first_run[other] for other in twins])
            run = first_run[key]
            label = f"{label} ({differences or f'{run.model} {run.img_size}px, #{number}'})"
        labels[key] = label
    return labels


def _flat_recipe(recipe: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in recipe.items():
        if isinstance(value, dict):
            flat.update(_flat_recipe(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _recipe_differences(run: RunResult, twins: Sequence[RunResult], limit: int = 3) -> str:
    """Describe the recipe values of ``run`` that differ among runs sharing its recipe name (seed aside)."""
    flats = [_flat_recipe(twin.recipe or {}) for twin in twins]
    own = _flat_recipe(run.recipe or {})
    keys = sorted({key for flat in flats for key in flat} - {"name", "seed"})
    differing = [key for key in keys if len({repr(flat.get(key)) for flat in flats}) > 1]
    return ", ".join(f"{key}={own.get(key)}" for key in differing[:limit])


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if row.get(key) is None else row[key] for key in columns})


def _number(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _with_interval(value, low, high) -> str:
    if value is None:
        return "–"
    if low is None:
        return _percent(value)
    return f"{_percent(value)} [{_percent(low)}, {_percent(high)}]"


def _mean_pm(row: dict, key: str, scale: float = 1.0, digits: int = 2) -> str:
    mean, std = row[f"{key}_mean"], row[f"{key}_std"]
    if mean is None:
        return "–"
    if std is None:
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def _markdown_table(header: list[str], lines: list[list[str]]) -> list[str]:
    table = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    table.extend("| " + " | ".join(cells) + " |" for cells in lines)
    return table


def _params(value) -> str:
    if value is None:
        return "–"
    # Three significant digits keep tiny test models from showing as 0.00 M.
    return f"{value / 1e6:.2f}" if value >= 1e6 else f"{value / 1e6:.3g}"


def render_markdown(rows: list[dict], groups: list[dict], settings: dict, figures: dict[str, str]) -> str:
    """Write the comparison as a Markdown page: settings, per-run table, per-group table, figures."""
    splits = sorted({f"{row['test_split']} split, {row['test_images']} images" for row in rows
                     if row["test_split"] is not None})
    confidence = settings["confidence"]
    lines = [
        "# Model comparison",
        "",
        f"Test figures are measured on: {'; '.join(splits) or 'no test split'}. "
        f"Accuracy figures are percentages; brackets give the {confidence} bootstrap interval over images.",
        f"Convergence is the first epoch whose validation loss is within {100 * settings['tolerance']:g}% "
        "of the run's lowest validation loss. Stability is the sample standard deviation of the "
        "epoch-to-epoch change in validation loss over the last "
        f"{100 * settings['stability_fraction']:g}% of the epochs (at least three; lower is steadier).",
        f"FLOPs are counted for one image at the run's input size; latency is the median batch-1 "
        f"forward time ({settings['latency']}).",
        "",
        "## Runs",
        "",
    ]
    run_header = ["run", "seed", "model", "input (px)", "params (M)", "GFLOPs", "latency (ms)", "train time (s)",
                  "converged at epoch (s)", "stability", "test top-1 (%)", "test macro-F1 (%)", "test images"]
    run_lines = [
        [row["run"], str(row["seed"]), row["model"], str(row["img_size"]), _params(row["params"]),
         _number(row["gflops"], 3), _number(row["latency_ms"]), _number(row["train_time_s"], 1),
         f"{row['epochs_to_convergence']} of {row['epochs_run']} ({_number(row['time_to_convergence_s'], 1)})",
         _number(row["stability"], 4),
         _with_interval(row["test_top1"], row["test_top1_ci_low"], row["test_top1_ci_high"]),
         _with_interval(row["test_macro_f1"], row["test_macro_f1_ci_low"], row["test_macro_f1_ci_high"]),
         str(row["test_images"])]
        for row in rows
    ]
    lines.extend(_markdown_table(run_header, run_lines))

    lines.extend(["", "## Recipes (mean ± standard deviation over seeds)", ""])
    group_header = ["recipe", "runs (seeds)", "model", "input (px)", "params (M)", "GFLOPs", "latency (ms)",
                    "train time (s)", "epochs to converge", "stability", "test top-1 (%)", "test macro-F1 (%)",
                    "test images"]
    group_lines = [
        [row["group"], f"{row['runs']} ({row['seeds']})", row["model"], str(row["img_size"]),
         _params(row["params"]), _number(row["gflops"], 3), _number(row["latency_ms"]),
         _mean_pm(row, "train_time_s", digits=1), _mean_pm(row, "epochs_to_convergence", digits=1),
         _mean_pm(row, "stability", digits=4), _mean_pm(row, "test_top1", 100),
         _mean_pm(row, "test_macro_f1", 100), str(row["test_images"])]
        for row in groups
    ]
    lines.extend(_markdown_table(group_header, group_lines))
    lines.append("")
    lines.append("A standard deviation needs at least two seeds; a recipe with one run shows its value alone.")

    lines.extend(["", "## Figures", ""])
    for title, path in figures.items():
        lines.append(f"![{title}]({path})")
        lines.append("")
    return "\n".join(lines)


def write_comparison(
    run_dirs: Sequence[str | Path],
    output: str | Path,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    stability_fraction: float = DEFAULT_STABILITY_FRACTION,
    with_latency: bool = True,
    device: str = "cpu",
    latency_runs: int = 20,
    threads: int | None = None,
) -> dict[str, Path]:
    """Write ``comparison.md``, ``runs.csv``, ``groups.csv`` and the figures into ``output``.

    Returns the written paths by name.
    """
    from zoo_core.evaluate.plots import plot_curves_overlay, plot_pareto, plot_run_curves

    paths = find_runs(run_dirs)
    runs = [load_run(path, tolerance=tolerance, stability_fraction=stability_fraction) for path in paths]
    measure_efficiency(runs, with_latency=with_latency, device=device, latency_runs=latency_runs, threads=threads)

    labels = _group_labels(runs)
    rows = [run_row(run, labels[run.group_key]) for run in runs]
    groups = group_rows(rows)

    output = Path(output)
    curves_dir = output / "curves"
    curves_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    run_names = [run.name for run in runs]
    for run in runs:
        # Runs from different parent folders may share a name; the parent keeps the files apart.
        file_name = run.name if run_names.count(run.name) == 1 else f"{run.run_dir.parent.name}-{run.name}"
        written[f"curves/{file_name}"] = plot_run_curves(run.run_dir, curves_dir / f"{file_name}.png")
    written["curves_overlay"] = plot_curves_overlay([(run.name, run.metrics) for run in runs],
                                                    output / "curves_overlay.png")

    points = [{"label": row["group"], "score": row["test_top1_mean"], "score_std": row["test_top1_std"],
               "gflops": row["gflops"], "latency_ms": row["latency_ms"], "params_m": row["params"] / 1e6
               if row["params"] is not None else None} for row in groups]
    latency_devices = sorted({row["latency_device"] for row in rows if row["latency_device"]})
    if len(latency_devices) > 1:
        logger.warning("latency was measured on different devices (%s); the latency axis mixes them",
                       "; ".join(latency_devices))
    latency_source = latency_devices[0] if len(latency_devices) == 1 else "devices differ, see runs.csv"
    axes = [("gflops", "GFLOPs per image (batch 1)"), ("params_m", "parameters (millions)")]
    if latency_devices:
        axes.insert(1, ("latency_ms", f"batch-1 latency (ms, {latency_source})"))
    splits = sorted({f"{row['test_split']}, {row['test_images']} images" for row in rows})
    written["pareto"] = plot_pareto(points, axes, output / "pareto.png",
                                    f"Test top-1 vs cost ({'; '.join(splits)}); red: Pareto front, "
                                    "bars: ± standard deviation over seeds")

    latency = f"{latency_runs} timed runs on {latency_source}" if with_latency else "not measured here"
    if any("bench.json" in device for device in latency_devices):
        latency += "; rows marked bench.json come from that file"
    settings = {"tolerance": tolerance, "stability_fraction": stability_fraction, "latency": latency,
                "confidence": _confidence_text(runs)}
    figures = {"Accuracy versus cost": "pareto.png", "Curves of all runs": "curves_overlay.png"}
    figures.update({f"Curves of {key.split('/', 1)[1]}": f"{key}.png" for key in written if key.startswith("curves/")})

    written["runs_csv"] = output / "runs.csv"
    _write_csv(written["runs_csv"], rows, RUN_COLUMNS)
    written["groups_csv"] = output / "groups.csv"
    group_columns = list(groups[0].keys())
    _write_csv(written["groups_csv"], groups, group_columns)
    written["markdown"] = output / "comparison.md"
    written["markdown"].write_text(render_markdown(rows, groups, settings, figures) + "\n")
    logger.info("wrote the comparison of %d runs in %d groups to %s", len(rows), len(groups), output)
    return written


def _confidence_text(runs: Sequence[RunResult]) -> str:
    levels = {(run.summary.get("test") or {}).get("settings", {}).get("confidence") for run in runs}
    levels.discard(None)
    if len(levels) == 1:
        return f"{round(100 * levels.pop())}%"
    return "per-run"
