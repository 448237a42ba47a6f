"""Sweeps: a 2x2 grid, re-running without retraining, and the history table."""

import csv
import json

import pytest
import yaml

from helpers import tiny_recipe
from zoo_core.recipe import RecipeError
from zoo_core.train.sweep import changes, load_sweep, run_sweep


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("sweep")
    tiny_recipe("train.epochs=1").save(tmp_path / "base.yaml")
    sweep_path = tmp_path / "sweep.yaml"
    sweep_path.write_text(yaml.safe_dump({
        "base": "base.yaml",
        "output": str(tmp_path / "runs"),
        "set": {"data.phantom_images_per_class": 8},
        "grid": {"optim.lr": [1e-3, 3e-3], "train.batch_size": [4, 8]},
    }))
    return sweep_path


@pytest.fixture(scope="module")
def finished_sweep(grid_sweep):
    return run_sweep(grid_sweep, progress=False)


def test_grid_sweep_runs_then_skips(grid_sweep, finished_sweep):
    sweep, actions = finished_sweep
    assert len(sweep.steps) == 4
    assert all("trained" in action for action in actions)
    summaries = [step.run_dir / "summary.json" for step in sweep.steps]
    stamps = [path.stat().st_mtime_ns for path in summaries]
    recipes = [yaml.safe_load((step.run_dir / "recipe.yaml").read_text()) for step in sweep.steps]
    assert [(r["optim"]["lr"], r["train"]["batch_size"]) for r in recipes] == [
        (1e-3, 4), (1e-3, 8), (3e-3, 4), (3e-3, 8)]
    assert all(r["data"]["phantom_images_per_class"] == 8 for r in recipes)

    _, again = run_sweep(grid_sweep, progress=False)
    assert all("skipped" in action for action in again)
    assert [path.stat().st_mtime_ns for path in summaries] == stamps


def test_history_table_matches_run_summaries(finished_sweep):
    sweep, _ = finished_sweep
    with open(sweep.output / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4]
    assert rows[0]["changes"] == "optim.lr=0.001, train.batch_size=4"
    assert rows[1]["changes"] == "train.batch_size: 4 -> 8"
    assert rows[2]["changes"] == "optim.lr: 0.001 -> 0.003, train.batch_size: 8 -> 4"
    for row, step in zip(rows, sweep.steps):
        summary = json.loads((step.run_dir / "summary.json").read_text())
        assert float(row["val_top1"]) == summary["val"]["top1"]
        assert float(row["test_top1"]) == summary["test"]["top1"]
        assert float(row["train_time_s"]) == summary["train_time_s"]
        assert row["status"] == "done"
    markdown = (sweep.output / "history.md").read_text()
    assert markdown.count("\n| ") == 5  # header and four steps
    assert "train.batch_size: 4 -> 8" in markdown


def test_sweep_rejects_bad_key_before_running(tmp_path):
    tiny_recipe().save(tmp_path / "base.yaml")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "steps": [{"optim.lr": 1e-3}, {"optim.lrr": 1e-3}]}))
    with pytest.raises(RecipeError, match="sweep step 2: unknown key 'optim.lrr'.*did you mean 'optim.lr'"):
        load_sweep(path)


def test_sweep_needs_grid_or_steps(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml"}))
    with pytest.raises(RecipeError, match="exactly one of 'grid'"):
        load_sweep(path)


def test_changes_describes_difference():
    assert changes(None, {}) == "base recipe"
    assert changes({"a": 1}, {"a": 1}) == "no change"
    assert changes({"a": 1}, {"b": 2}) == "a: 1 -> null, b: null -> 2"
