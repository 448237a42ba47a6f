"""Metric functions checked against values worked out by hand on small confusion matrices."""

import numpy as np
import pytest

from zoo_core.evaluate.metrics import (
    bootstrap_interval,
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    format_report,
    per_class_scores,
    summary_scores,
)

CLASSES3 = ["a", "b", "c"]


def one_hot_probs(predictions, num_classes, confidence=0.9):
    """Probabilities whose argmax is ``predictions``, with the rest spread evenly."""
    rest = (1 - confidence) / (num_classes - 1)
    probs = np.full((len(predictions), num_classes), rest)
    probs[np.arange(len(predictions)), predictions] = confidence
    return probs


def test_confusion_matrix_counts_pairs():
    matrix = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_scores_with_never_predicted_class():
    # true 0 -> predicted 0, 1; true 1 -> 1, 1; true 2 -> 0, 0: class c is never predicted.
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, 0, 0])
    matrix = confusion_matrix(labels, predictions, 3)
    scores = per_class_scores(matrix)

    np.testing.assert_allclose(scores["precision"], [1 / 3, 2 / 3, 0.0])
    np.testing.assert_allclose(scores["recall"], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(scores["f1"], [0.4, 0.8, 0.0])

    summary = summary_scores(matrix)
    assert summary["top1"] == pytest.approx(0.5)
    assert summary["balanced_accuracy"] == pytest.approx(0.5)
    assert summary["macro_f1"] == pytest.approx(0.4)


def test_scores_with_absent_class():
    # Class c has no images and no predictions: it counts in neither average.
    matrix = confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 3)
    scores = per_class_scores(matrix)
    assert np.isnan(scores["recall"][2])
    assert np.isnan(scores["f1"][2])

    summary = summary_scores(matrix)
    # recall a = 1, b = 1/2; precision a = 1/2, b = 1; F1 = 2/3 for both.
    assert summary["balanced_accuracy"] == pytest.approx(0.75)
    assert summary["macro_f1"] == pytest.approx(2 / 3)


def test_scores_with_predicted_class_without_images():
    # Class c has no images but one prediction: F1 0 counts, recall stays undefined.
    matrix = confusion_matrix(np.array([0, 0]), np.array([0, 2]), 3)
    scores = per_class_scores(matrix)
    assert scores["precision"][2] == 0.0
    assert np.isnan(scores["recall"][2])
    assert scores["f1"][2] == 0.0

    summary = summary_scores(matrix)
    assert summary["balanced_accuracy"] == pytest.approx(0.5)
    assert summary["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)


def test_ece_hand_computed():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 1, 1, 1])
    # Correct: yes, no, yes, no; confidences 0.9, 0.8, 0.7, 0.6.
    assert expected_calibration_error(labels, probs, bins=2) == pytest.approx(abs(0.5 - 0.75))
    assert expected_calibration_error(labels, probs, bins=10) == pytest.approx((0.1 + 0.8 + 0.3 + 0.6) / 4)


def test_ece_perfectly_calibrated_is_zero():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(np.array([0, 1]), probs) == pytest.approx(0.0)


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 60)
    predictions = np.where(rng.random(60) < 0.7, labels, rng.integers(0, 4, 60))

    first = bootstrap_interval(labels, predictions, 4, seed=7)
    second = bootstrap_interval(labels, predictions, 4, seed=7)
    other = bootstrap_interval(labels, predictions, 4, seed=8)
    assert first == second
    assert first != other


def test_bootstrap_contains_point_estimate():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, 80)
    predictions = np.where(rng.random(80) < 0.6, labels, rng.integers(0, 4, 80))
    point = summary_scores(confusion_matrix(labels, predictions, 4))

    interval = bootstrap_interval(labels, predictions, 4, seed=0)
    assert interval["top1"][0] <= point["top1"] <= interval["top1"][1]
    assert interval["macro_f1"][0] <= point["macro_f1"] <= interval["macro_f1"][1]
    assert interval["top1"][0] < interval["top1"][1]


def test_bootstrap_macro_f1_matches_per_resample_loop():
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 3, 25)
    predictions = np.where(rng.random(25) < 0.5, labels, rng.integers(0, 3, 25))
    interval = bootstrap_interval(labels, predictions, 3, resamples=200, seed=4)

    # The same resamples, scored one by one through the unbatched functions.
    indices = np.random.default_rng(4).integers(0, 25, size=(200, 25))
    values = [summary_scores(confusion_matrix(labels[i], predictions[i], 3))["macro_f1"] for i in indices]
    np.testing.assert_allclose(interval["macro_f1"], np.percentile(values, [2.5, 97.5]))


def test_bootstrap_all_correct_is_degenerate():
    labels = np.array([0, 1, 2, 3, 0, 1])
    interval = bootstrap_interval(labels, labels.copy(), 4)
    assert interval["top1"] == [1.0, 1.0]


def test_bootstrap_rejects_bad_confidence():
    with pytest.raises(ValueError, match="confidence=1.5"):
        bootstrap_interval(np.array([0]), np.array([0]), 2, confidence=1.5)


def test_report_keeps_original_keys():
    labels = np.array([0, 0, 1, 1, 2, 2])
    report = classification_report(labels, one_hot_probs([0, 1, 1, 1, 0, 0], 3), CLASSES3, "test")
    for key in ("split", "num_images", "top1", "per_class", "confusion_matrix", "class_names"):
        assert key in report
    assert report["split"] == "test"
    assert report["num_images"] == 6
    assert report["per_class"]["a"]["accuracy"] == pytest.approx(0.5)
    assert report["per_class"]["a"]["support"] == 2


def test_report_new_metrics():
    labels = np.array([0, 0, 1, 1, 2, 2])
    report = classification_report(labels, one_hot_probs([0, 1, 1, 1, 0, 0], 3), CLASSES3, "test")
    assert report["top1"] == pytest.approx(0.5)
    assert report["balanced_accuracy"] == pytest.approx(0.5)
    assert report["macro_f1"] == pytest.approx(0.4)
    assert report["per_class"]["c"]["precision"] == 0.0
    assert report["per_class"]["c"]["predicted"] == 0
    assert report["per_class"]["b"]["f1"] == pytest.approx(0.8)
    # Every image has confidence 0.9 and half are right.
    assert report["ece"] == pytest.approx(0.4)
    assert report["top1_ci"][0] <= 0.5 <= report["top1_ci"][1]
    assert report["macro_f1_ci"][0] <= 0.4 <= report["macro_f1_ci"][1]
    assert report["settings"]["bootstrap_seed"] == 0


def test_report_seed_is_keyword():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    probs = one_hot_probs([0, 1, 1, 0, 2, 2, 1, 1], 3)
    first = classification_report(labels, probs, CLASSES3, "val", seed=1, bootstrap_resamples=300)
    second = classification_report(labels, probs, CLASSES3, "val", seed=1, bootstrap_resamples=300)
    assert first == second
    assert first["settings"]["bootstrap_resamples"] == 300


def test_report_empty_split():
    report = classification_report(np.zeros(0, dtype=int), np.zeros((0, 3)), CLASSES3, "test")
    assert report["num_images"] == 0
    assert report["top1"] is None
    assert report["top1_ci"] is None
    assert report["ece"] is None


def test_report_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"expected \(num_images, 3\)"):
        classification_report(np.array([0, 1]), np.zeros((2, 4)), CLASSES3, "test")


def test_report_rejects_out_of_range_label():
    with pytest.raises(ValueError, match="class indices"):
        classification_report(np.array([0, 3]), np.zeros((2, 3)), CLASSES3, "test")


def test_format_report_names_split_and_count():
    labels = np.array([0, 0, 1, 1, 2, 2])
    report = classification_report(labels, one_hot_probs([0, 1, 1, 1, 0, 0], 3), CLASSES3, "test")
    text = format_report(report)
    assert "test split, 6 images" in text
    assert "50.00%" in text
    assert "macro-F1           40.00%" in text
    assert "95% CI" in text
    assert "confusion matrix" in text
