"""Exact resume on the decoded-image cache: a run stopped mid-epoch and resumed matches an uninterrupted one."""

import pytest

from helpers import interrupt_mid_epoch, metrics_without_timing, tiny_recipe
from zoo_core.train.run import resume_run, train_recipe

OVERRIDES = ("data.cache=true", "data.num_workers=2", "train.epochs=2", "train.batch_size=4",
             "augment.randaugment_magnitude=9", "optim.lr=1e-3")


@pytest.fixture(autouse=True)
def zoo_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "zoo-cache"))


def test_cache_resume_mid_epoch_matches(tmp_path, monkeypatch):
    reference_dir = tmp_path / "reference"
    train_recipe(tiny_recipe(*OVERRIDES), reference_dir, progress=False)

    run_dir = tmp_path / "run"
    # 24 training images in batches of 4 make six steps an epoch, so the eighth check falls in epoch 2.
    interrupt_mid_epoch(tiny_recipe(*OVERRIDES), run_dir, monkeypatch, stop_at_check=8)

    resume_run(run_dir, progress=False)
    assert metrics_without_timing(run_dir) == metrics_without_timing(reference_dir)
