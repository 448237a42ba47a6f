"""Exact resume on the decoded-image cache: a run stopped mid-epoch and resumed matches an uninterrupted one."""

import json

import pytest

from helpers import tiny_recipe
from zoo_core.train import checkpoint as ckpt
from zoo_core.train.run import resume_run, train_recipe
from zoo_core.train.trainer import DefaultTrainer, TrainingInterrupted

# Epoch and elapsed times differ between runs; every other figure must match exactly.
TIMING_KEYS = {"epoch_time_s", "elapsed_s"}
OVERRIDES = ("data.cache=true", "data.num_workers=2", "train.epochs=2", "train.batch_size=4",
             "augment.randaugment_magnitude=9", "optim.lr=1e-3")


@pytest.fixture(autouse=True)
def zoo_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "zoo-cache"))


def read_metrics(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{key: value for key, value in json.loads(line).items() if key not in TIMING_KEYS} for line in lines]


def test_cache_resume_mid_epoch_matches(tmp_path, monkeypatch):
    reference_dir = tmp_path / "reference"
    train_recipe(tiny_recipe(*OVERRIDES), reference_dir, progress=False)

    original = DefaultTrainer._stop_requested
    calls = {"count": 0}

    # 24 training images in batches of 4 make six steps an epoch, so the eighth check falls in epoch 2.
    def stop_in_second_epoch(self, context):
        calls["count"] += 1
        if calls["count"] == 8:
            self._signal_name = "SIGINT"
        return original(self, context)

    monkeypatch.setattr(DefaultTrainer, "_stop_requested", stop_in_second_epoch)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train_recipe(tiny_recipe(*OVERRIDES), run_dir, progress=False)
    assert ckpt.load_trainer_state(run_dir / "checkpoints" / "last")["batch_in_epoch"] > 0

    monkeypatch.setattr(DefaultTrainer, "_stop_requested", original)
    resume_run(run_dir, progress=False)
    assert read_metrics(run_dir) == read_metrics(reference_dir)
