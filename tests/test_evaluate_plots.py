"""Run curves and comparison figures written as PNG files."""

import json

import pytest
from PIL import Image

from zoo_core.evaluate.plots import plot_curves_overlay, plot_pareto, plot_run_curves


def epoch_records(count, offset=0.0):
    return [
        {"epoch": epoch, "train_loss": 1.5 - 0.1 * epoch + offset, "train_top1": 0.3 + 0.05 * epoch,
         "val_loss": 1.6 - 0.1 * epoch + offset, "val_top1": 0.25 + 0.05 * epoch, "lr": 1e-4,
         "epoch_time_s": 5.0, "elapsed_s": 5.0 * epoch, "train_images": 12, "val_images": 4}
        for epoch in range(1, count + 1)
    ]


def write_metrics(run_dir, records):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))


def assert_png(path, min_width=400):
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_width


def test_run_curves_default_path(tmp_path):
    write_metrics(tmp_path / "run", epoch_records(4))
    path = plot_run_curves(tmp_path / "run")
    assert path == tmp_path / "run" / "curves.png"
    assert_png(path)


def test_run_curves_custom_output(tmp_path):
    write_metrics(tmp_path / "run", epoch_records(2))
    path = plot_run_curves(tmp_path / "run", tmp_path / "figures" / "run.png")
    assert path.is_file()
    assert not (tmp_path / "run" / "curves.png").exists()


def test_run_curves_single_epoch(tmp_path):
    write_metrics(tmp_path / "run", epoch_records(1))
    assert_png(plot_run_curves(tmp_path / "run"))


def test_run_curves_empty_metrics(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match="no epoch records"):
        plot_run_curves(tmp_path)


def test_run_curves_missing_metrics(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        plot_run_curves(tmp_path)


def test_overlay_many_runs(tmp_path):
    runs = [(f"run{index}", epoch_records(3, offset=0.05 * index)) for index in range(12)]
    assert_png(plot_curves_overlay(runs, tmp_path / "overlay.png"))


def test_pareto_skips_missing_costs(tmp_path):
    points = [
        {"label": "a", "score": 0.8, "score_std": 0.02, "gflops": 1.0, "latency_ms": None},
        {"label": "b", "score": 0.9, "score_std": None, "gflops": 4.0, "latency_ms": 3.0},
    ]
    path = plot_pareto(points, [("gflops", "GFLOPs"), ("latency_ms", "latency (ms)")], tmp_path / "p.png", "test")
    assert_png(path)
