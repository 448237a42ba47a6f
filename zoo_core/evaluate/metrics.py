"""Classification metrics computed from labels and predicted probabilities.

All accuracy-like figures are fractions in [0, 1]; every report names the split
and the number of images it was measured on.

Undefined per-class scores follow scikit-learn's ``zero_division=0`` default:
a class that is never predicted has precision 0 and F1 0. A class with no
images in the split has no recall, so it is left out of balanced accuracy.
It is also left out of macro-F1 when the model never predicts it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = [
    "bootstrap_interval",
    "classification_report",
    "confusion_matrix",
    "expected_calibration_error",
    "format_report",
    "per_class_scores",
    "summary_scores",
]


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Return the (true class, predicted class) count matrix."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Compute precision, recall and F1 for each class of a confusion matrix.

    Returns float arrays in which NaN marks an undefined value: recall (and F1)
    of a class with no images and no predictions, recall of a class with no images.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    true_positives = np.diag(matrix)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)

    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positives / predicted, 0.0)
        recall = np.where(support > 0, true_positives / support, np.nan)
        denominator = precision + np.nan_to_num(recall)
        f1 = np.where(denominator > 0, 2 * precision * np.nan_to_num(recall) / denominator, 0.0)
    f1 = np.where((support == 0) & (predicted == 0), np.nan, f1)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support, "predicted": predicted}


def summary_scores(matrix: np.ndarray) -> dict[str, float | None]:
    """Compute top-1, balanced accuracy and macro-F1 from a confusion matrix."""
    matrix = np.asarray(matrix)
    total = matrix.sum()
    if total == 0:
        return {"top1": None, "balanced_accuracy": None, "macro_f1": None}

    scores = per_class_scores(matrix)
    return {
        "top1": float(np.trace(matrix) / total),
        "balanced_accuracy": float(np.nanmean(scores["recall"])),
        "macro_f1": float(np.nanmean(scores["f1"])),
    }


def _batched_macro_f1(matrices: np.ndarray) -> np.ndarray:
    """Compute macro-F1 for a stack of confusion matrices of shape (R, K, K)."""
    matrices = matrices.astype(np.float64)
    true_positives = np.diagonal(matrices, axis1=1, axis2=2)
    support = matrices.sum(axis=2)
    predicted = matrices.sum(axis=1)

    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positives / predicted, 0.0)
        recall = np.where(support > 0, true_positives / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (support > 0) | (predicted > 0)
    return (f1 * present).sum(axis=1) / present.sum(axis=1)


def bootstrap_interval(
    labels: np.ndarray,
    predictions: np.ndarray,
    num_classes: int,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, list[float] | None]:
    """Estimate percentile-bootstrap intervals for top-1 and macro-F1.

    Images are resampled with replacement ``resamples`` times from a generator
    seeded with ``seed``, so the same inputs always give the same interval.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} is outside (0, 1); use e.g. 0.95 for a 95% interval")
    if resamples < 1:
        raise ValueError(f"resamples={resamples!r} must be at least 1; 1000 is the usual choice")
    count = len(labels)
    if count == 0:
        return {"top1": None, "macro_f1": None}

    rng = np.random.default_rng(seed)
    indices = rng.integers(0, count, size=(resamples, count))
    sampled_labels = labels[indices]
    sampled_predictions = predictions[indices]

    top1 = (sampled_labels == sampled_predictions).mean(axis=1)

    # One confusion matrix per resample, filled through flat indices.
    flat = (np.arange(resamples)[:, None] * num_classes + sampled_labels) * num_classes + sampled_predictions
    matrices = np.bincount(flat.ravel(), minlength=resamples * num_classes * num_classes)
    macro_f1 = _batched_macro_f1(matrices.reshape(resamples, num_classes, num_classes))

    tail = (1.0 - confidence) / 2 * 100
    percentiles = [tail, 100 - tail]
    return {
        "top1": [float(v) for v in np.percentile(top1, percentiles)],
        "macro_f1": [float(v) for v in np.percentile(macro_f1, percentiles)],
    }


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> float | None:
    """Compute the expected calibration error over equal-width confidence bins.

    The confidence of an image is its highest class probability. Bin ``b``
    covers ``((b - 1) / bins, b / bins]``, with confidence 0 in the first bin.
    ECE is the image-weighted mean of ``|accuracy - mean confidence|`` per bin.
    """
    if bins < 1:
        raise ValueError(f"bins={bins!r} must be at least 1; 15 is the usual choice")
    if len(labels) == 0:
        return None

    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    bin_index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)

    ece = 0.0
    for index in np.unique(bin_index):
        members = bin_index == index
        gap = abs(correct[members].mean() - confidence[members].mean())
        ece += members.sum() / len(labels) * gap
    return float(ece)


def _check_inputs(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> None:
    if probs.ndim != 2 or probs.shape[1] != len(class_names):
        raise ValueError(
            f"probs has shape {probs.shape}, expected (num_images, {len(class_names)}) "
            f"for the classes {list(class_names)}"
        )
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels has shape {labels.shape}, expected ({probs.shape[0]},) to match probs")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(
            f"labels must be class indices in [0, {len(class_names) - 1}]; "
            f"got values from {labels.min()} to {labels.max()}"
        )


def _optional(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def classification_report(
    labels: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    split: str,
    *,
    bootstrap_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    ece_bins: int = 15,
) -> dict:
    """Summarise predictions on one split.

    The report contains top-1, balanced accuracy, macro-F1, per-class precision,
    recall, F1 and accuracy, the confusion matrix, the expected calibration
    error and seeded percentile-bootstrap intervals for top-1 and macro-F1.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    _check_inputs(labels, probs, class_names)

    predictions = probs.argmax(axis=1)
    matrix = confusion_matrix(labels, predictions, len(class_names))
    scores = per_class_scores(matrix)

    per_class = {}
    for index, name in enumerate(class_names):
        support = int(matrix[index].sum())
        per_class[name] = {
            "support": support,
            "predicted": int(scores["predicted"][index]),
            "accuracy": float(matrix[index, index] / support) if support else None,
            "precision": float(scores["precision"][index]),
            "recall": _optional(scores["recall"][index]),
            "f1": _optional(scores["f1"][index]),
        }

    intervals = bootstrap_interval(
        labels, predictions, len(class_names), resamples=bootstrap_resamples, confidence=confidence, seed=seed
    )
    return {
        "split": split,
        "num_images": int(len(labels)),
        **summary_scores(matrix),
        "top1_ci": intervals["top1"],
        "macro_f1_ci": intervals["macro_f1"],
        "ece": expected_calibration_error(labels, probs, bins=ece_bins),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
        "settings": {
            "confidence": confidence,
            "interval_method": "percentile bootstrap over images",
            "bootstrap_resamples": bootstrap_resamples,
            "bootstrap_seed": seed,
            "ece_bins": ece_bins,
            "zero_division": 0.0,
        },
    }


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _interval(values: list[float] | None) -> str:
    return "n/a" if values is None else f"{100 * values[0]:.2f}-{100 * values[1]:.2f}%"


def format_report(report: dict) -> str:
    """Render a ``classification_report`` dict as a plain-text block for the terminal."""
    settings = report.get("settings", {})
    level = round(100 * settings.get("confidence", 0.95))
    resamples = settings.get("bootstrap_resamples", "?")
    lines = [
        f"{report['split']} split, {report['num_images']} images",
        f"  top-1              {_percent(report['top1'])}  "
        f"({level}% CI {_interval(report.get('top1_ci'))}, bootstrap, {resamples} resamples)",
        f"  balanced accuracy  {_percent(report.get('balanced_accuracy'))}",
        f"  macro-F1           {_percent(report.get('macro_f1'))}  "
        f"({level}% CI {_interval(report.get('macro_f1_ci'))})",
    ]
    ece = report.get("ece")
    ece_text = "n/a" if ece is None else f"{ece:.4f}"
    lines.append(f"  ECE                {ece_text}  ({settings.get('ece_bins', '?')} equal-width bins)")

    names = report["class_names"]
    width = max(len("class"), *(len(name) for name in names))
    lines.append("")
    lines.append(f"  {'class':<{width}}  precision  recall     f1         support")
    for name in names:
        scores = report["per_class"][name]
        lines.append(
            f"  {name:<{width}}  {_percent(scores.get('precision')):<9}  {_percent(scores.get('recall')):<9}  "
            f"{_percent(scores.get('f1')):<9}  {scores['support']}"
        )

    lines.append("")
    lines.append("  confusion matrix (rows: true class, columns: predicted class)")
    cell = max(*(len(name) for name in names), *(len(str(v)) for row in report["confusion_matrix"] for v in row))
    lines.append(f"  {'':<{width}}  " + " ".join(f"{name:>{cell}}" for name in names))
    for name, row in zip(names, report["confusion_matrix"]):
        lines.append(f"  {name:<{width}}  " + " ".join(f"{value:>{cell}}" for value in row))
    return "\n".join(lines)
