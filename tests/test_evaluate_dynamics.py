"""Training dynamics from hand-written metrics.jsonl files."""

import json

import pytest

from zoo_core.evaluate.dynamics import read_metrics, training_dynamics


def records_from(val_losses, train_losses=None, epoch_time=10.0):
    train_losses = train_losses or [loss - 0.1 for loss in val_losses]
    return [
        {
            "epoch": epoch,
            "train_loss": train,
            "train_top1": 0.5,
            "val_loss": val,
            "val_top1": 0.5,
            "lr": 1e-4,
            "epoch_time_s": epoch_time,
            "elapsed_s": epoch * epoch_time,
            "train_images": 10,
            "val_images": 4,
        }
        for epoch, (train, val) in enumerate(zip(train_losses, val_losses), start=1)
    ]


def test_convergence_first_epoch_within_tolerance():
    # Best 1.00 at epoch 5; 1.04 at epoch 3 is within 5%, 1.10 at epoch 2 is not.
    records = records_from([2.0, 1.10, 1.04, 1.2, 1.0, 1.03])
    dynamics = training_dynamics(records, tolerance=0.05)
    assert dynamics["best_epoch"] == 5
    assert dynamics["best_val_loss"] == pytest.approx(1.0)
    assert dynamics["convergence"]["epoch"] == 3
    assert dynamics["convergence"]["time_s"] == pytest.approx(30.0)
    assert dynamics["convergence"]["tolerance"] == 0.05


def test_convergence_zero_tolerance_is_best_epoch():
    records = records_from([2.0, 1.10, 1.04, 1.2, 1.0, 1.03])
    assert training_dynamics(records, tolerance=0.0)["convergence"]["epoch"] == 5


def test_train_time_is_last_elapsed():
    records = records_from([2.0, 1.5, 1.2], epoch_time=7.5)
    assert training_dynamics(records)["train_time_s"] == pytest.approx(22.5)
    assert training_dynamics(records)["epochs_run"] == 3


def test_stability_hand_computed():
    # Eight epochs, last half = epochs 5-8: losses 1.0, 1.2, 0.9, 1.0.
    # Changes +0.2, -0.3, +0.1: mean 0, sample variance (0.04 + 0.09 + 0.01) / 2 = 0.07.
    records = records_from([3.0, 2.0, 1.5, 1.1, 1.0, 1.2, 0.9, 1.0])
    stability = training_dynamics(records, stability_fraction=0.5)["stability"]
    assert stability["window_epochs"] == 4
    assert stability["value"] == pytest.approx(0.07 ** 0.5)


def test_stability_uses_at_least_three_epochs():
    records = records_from([1.0, 0.8, 0.7])
    stability = training_dynamics(records, stability_fraction=0.1)["stability"]
    assert stability["window_epochs"] == 3
    assert stability["value"] == pytest.approx(abs(-0.2 - -0.1) / 2 ** 0.5)


def test_stability_none_for_two_epochs():
    records = records_from([1.0, 0.8])
    assert training_dynamics(records)["stability"]["value"] is None


def test_generalization_gap_at_best_epoch():
    records = records_from([1.5, 1.0, 1.2], train_losses=[1.6, 0.7, 0.5])
    assert training_dynamics(records)["generalization_gap"] == pytest.approx(0.3)


def test_rejects_negative_tolerance():
    with pytest.raises(ValueError, match="tolerance=-0.1"):
        training_dynamics(records_from([1.0]), tolerance=-0.1)


def test_rejects_empty_records():
    with pytest.raises(ValueError, match="no epoch records"):
        training_dynamics([])


def test_read_metrics_sorts_by_epoch(tmp_path):
    records = records_from([1.0, 0.9, 0.8])
    lines = [json.dumps(record) for record in reversed(records)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert [record["epoch"] for record in read_metrics(tmp_path)] == [1, 2, 3]


def test_read_metrics_names_bad_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(records_from([1.0])[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match="metrics.jsonl:2"):
        read_metrics(path)


def test_read_metrics_names_missing_key(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"epoch": 1, "train_loss": 1.0}) + "\n")
    with pytest.raises(ValueError, match="val_loss"):
        read_metrics(path)


def test_read_metrics_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics file not found"):
        read_metrics(tmp_path)
