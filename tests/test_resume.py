"""Exact resume: a run interrupted by SIGINT or SIGKILL and resumed matches an uninterrupted run."""

import signal
import subprocess
import sys
import time

import pytest

from helpers import interrupt_mid_epoch, metrics_without_timing, tiny_recipe
from zoo_core.train import checkpoint as ckpt
from zoo_core.train.run import resume_run, train_recipe

RECIPE_OVERRIDES = ("train.epochs=3", "data.phantom_images_per_class=8", "train.batch_size=4",
                    "augment.randaugment_magnitude=9", "model.drop_path_rate=0.1", "optim.lr=1e-3",
                    "schedule.name=cosine", "schedule.warmup_epochs=1")


@pytest.fixture(scope="module")
def reference_metrics(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    train_recipe(tiny_recipe(*RECIPE_OVERRIDES), run_dir, progress=False)
    return metrics_without_timing(run_dir)


def start_training(tmp_path):
    recipe_path = tmp_path / "recipe.yaml"
    tiny_recipe(*RECIPE_OVERRIDES).save(recipe_path)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "zoo_core.cli", "train", str(recipe_path), "--output", str(run_dir), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, run_dir


def wait_for_epochs(process, run_dir, count, timeout=180.0):
    deadline = time.monotonic() + timeout
    metrics = run_dir / "metrics.jsonl"
    while time.monotonic() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= count:
            return
        if process.poll() is not None:
            raise AssertionError(f"training exited early with {process.returncode}: {process.stderr.read()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"no {count} epoch(s) in {run_dir} after {timeout} s")


def test_resume_after_sigint_matches_uninterrupted(tmp_path, reference_metrics):
    process, run_dir = start_training(tmp_path)
    wait_for_epochs(process, run_dir, 1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert f"zoo train --resume {run_dir}" in stderr
    assert ckpt.load_trainer_state(run_dir / "checkpoints" / "last")["epoch"] >= 1

    resume_run(run_dir, progress=False)
    assert metrics_without_timing(run_dir) == reference_metrics


def test_resume_after_sigkill_matches_uninterrupted(tmp_path, reference_metrics):
    process, run_dir = start_training(tmp_path)
    wait_for_epochs(process, run_dir, 1)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists(), "the run finished before it could be killed"

    state = ckpt.load_trainer_state(run_dir / "checkpoints" / "last")
    assert state["epoch"] >= 1
    assert ckpt.load_model_state(run_dir / "checkpoints" / "last")
    resume_run(run_dir, progress=False)
    assert metrics_without_timing(run_dir) == reference_metrics
    leftovers = [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_resume_mid_epoch_checkpoint_matches(tmp_path, reference_metrics, monkeypatch):
    """Stop in the middle of epoch 2 (as SIGINT would) and resume from that step."""
    run_dir = tmp_path / "run"
    # 24 training images in batches of 4: six steps an epoch, so the ninth check is inside epoch 2.
    interrupt_mid_epoch(tiny_recipe(*RECIPE_OVERRIDES), run_dir, monkeypatch, stop_at_check=9)

    resume_run(run_dir, progress=False)
    assert metrics_without_timing(run_dir) == reference_metrics


def test_resume_requires_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        resume_run(tmp_path, progress=False)
