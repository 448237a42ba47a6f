"""Training curves and comparison figures, written as PNG files with matplotlib's Agg backend."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from zoo_core.evaluate.dynamics import read_metrics  # noqa: E402

__all__ = ["pareto_front", "plot_curves_overlay", "plot_pareto", "plot_run_curves"]

logger = logging.getLogger(__name__)

DPI = 120


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _split_sizes(records: list[dict]) -> str:
    last = records[-1]
    train = last.get("train_images", "?")
    val = last.get("val_images", "?")
    return f"train {train} images, validation {val} images"


def _draw_curves(loss_axis, accuracy_axis, records: list[dict], label: str, color, marker: str | None = None) -> None:
    epochs = [record["epoch"] for record in records]
    prefix = f"{label}: " if label else ""
    # A marker per run keeps runs apart where their curves coincide.
    style = {"color": color, "marker": marker, "markersize": 5, "alpha": 0.85}
    loss_axis.plot(epochs, [r["train_loss"] for r in records], "--", label=f"{prefix}train", **style)
    loss_axis.plot(epochs, [r["val_loss"] for r in records], "-", label=f"{prefix}validation", **style)

    if all("train_top1" in r for r in records):
        accuracy_axis.plot(epochs, [100 * r["train_top1"] for r in records], "--", label=f"{prefix}train", **style)
    if all("val_top1" in r for r in records):
        accuracy_axis.plot(epochs, [100 * r["val_top1"] for r in records], "-", label=f"{prefix}validation",
                           **style)


def _label_axes(loss_axis, accuracy_axis) -> None:
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("cross-entropy loss")
    loss_axis.set_title("Loss")
    accuracy_axis.set_xlabel("epoch")
    accuracy_axis.set_ylabel("top-1 accuracy (%)")
    accuracy_axis.set_title("Top-1 accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)


def plot_run_curves(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Plot a run's training and validation loss and top-1 per epoch.

    Reads ``run_dir/metrics.jsonl`` and writes ``output`` (by default
    ``run_dir/curves.png``); returns the path written.
    """
    run_dir = Path(run_dir)
    output = Path(output) if output is not None else run_dir / "curves.png"
    records = read_metrics(run_dir / "metrics.jsonl")
    if not records:
        raise ValueError(f"{run_dir / 'metrics.jsonl'} has no epoch records, so there is nothing to plot")

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    _draw_curves(loss_axis, accuracy_axis, records, "", "tab:blue")
    _label_axes(loss_axis, accuracy_axis)
    loss_axis.legend()
    accuracy_axis.legend()
    figure.suptitle(f"{run_dir.name} ({_split_sizes(records)})")
    figure.tight_layout()

    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=DPI)
    plt.close(figure)
    logger.debug("wrote %s", output)
    return output


def plot_curves_overlay(runs: Sequence[tuple[str, list[dict]]], output: str | Path) -> Path:
    """Overlay the loss and top-1 curves of several runs, given as (label, epoch records) pairs."""
    output = Path(output)
    colors = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    columns = min(4, len(runs) + 2)
    rows = -(-(len(runs) + 2) // columns)
    legend_height = 0.22 * rows + 0.12
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(13, 4.5 + legend_height))
    for index, (label, records) in enumerate(runs):
        _draw_curves(loss_axis, accuracy_axis, records, label, colors(index % colors.N), MARKERS[index % len(MARKERS)])
    _label_axes(loss_axis, accuracy_axis)

    # One legend below both panels: a colour per run, a line style per split.
    handles = [Line2D([], [], color=colors(index % colors.N), marker=MARKERS[index % len(MARKERS)], label=label)
               for index, (label, _) in enumerate(runs)]
    handles.append(Line2D([], [], color="black", linestyle="--", label="train"))
    handles.append(Line2D([], [], color="black", linestyle="-", label="validation"))
    figure.legend(handles=handles, loc="lower center", ncol=columns, fontsize="small")

    sizes = {_split_sizes(records) for _, records in runs}
    size_note = sizes.pop() if len(sizes) == 1 else "image counts differ between runs; see each run's figure"
    figure.suptitle(f"Training (dashed) and validation (solid) curves of all runs ({size_note})")
    figure.tight_layout(rect=(0, legend_height / (4.5 + legend_height), 1, 1))

    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=DPI)
    plt.close(figure)
    return output


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Return the indices of points that no other point beats (lower or equal cost and higher
    or equal score, one of them strictly), ordered by cost."""
    front = []
    for i, (cost, score) in enumerate(zip(costs, scores)):
        dominated = any(
            other_cost <= cost and other_score >= score and (other_cost < cost or other_score > score)
            for j, (other_cost, other_score) in enumerate(zip(costs, scores))
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (costs[i], -scores[i]))


def plot_pareto(points: Sequence[dict], axes_spec: Sequence[tuple[str, str]], output: str | Path,
                title: str) -> Path:
    """Draw accuracy against each cost in ``axes_spec`` and mark the Pareto front.

    Each point is a dict with ``label``, ``score`` (top-1 in [0, 1]), optional
    ``score_std`` and one value per cost key. ``axes_spec`` lists (cost key,
    axis label) pairs, one panel each. Points without a value for a cost are
    left out of that panel.
    """
    output = Path(output)
    figure, axes = plt.subplots(1, len(axes_spec), figsize=(6.5 * len(axes_spec), 5), squeeze=False)
    for axis, (key, axis_label) in zip(axes[0], axes_spec):
        usable = [point for point in points if point.get(key) is not None and point.get("score") is not None]
        costs = [point[key] for point in usable]
        scores = [100 * point["score"] for point in usable]
        errors = [100 * (point.get("score_std") or 0.0) for point in usable]
        front = set(pareto_front(costs, scores))

        for index, point in enumerate(usable):
            on_front = index in front
            axis.errorbar(costs[index], scores[index], yerr=errors[index], fmt="o" if on_front else "s",
                          color="tab:red" if on_front else "tab:gray", markersize=8 if on_front else 6,
                          capsize=4)
            axis.annotate(point["label"], (costs[index], scores[index]), textcoords="offset points",
                          xytext=(6, 6), fontsize="small")
        ordered = pareto_front(costs, scores)
        if ordered:
            axis.step([costs[i] for i in ordered], [scores[i] for i in ordered], where="post",
                      color="tab:red", alpha=0.6)
        axis.plot([], [], "o", color="tab:red", label="on the Pareto front")
        axis.plot([], [], "s", color="tab:gray", label="dominated")
        axis.set_xlabel(axis_label)
        axis.set_ylabel("test top-1 accuracy (%)")
        axis.set_title(f"Accuracy vs {axis_label.split(' (')[0]}")
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right", fontsize="small")
        axis.margins(x=0.25, y=0.2)

    figure.suptitle(title)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=DPI)
    plt.close(figure)
    return output
