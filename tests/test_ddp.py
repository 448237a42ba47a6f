"""Two-process DDP training with gloo on the CPU."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from helpers import tiny_recipe
from zoo_core.plugins import get_registries
from zoo_core.train import checkpoint as ckpt
from zoo_core.train.evaluation import load_run_model

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    recipe = tiny_recipe("train.epochs=2", "data.phantom_images_per_class=12", "train.batch_size=4")
    recipe_path = folder / "recipe.yaml"
    recipe.save(recipe_path)
    run_dir = folder / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               str(WORKER), str(recipe_path), str(run_dir)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return recipe, run_dir


def test_ddp_ranks_end_with_equal_weights(ddp_run):
    _, run_dir = ddp_run
    rank0 = load_file(run_dir / "rank0.safetensors")
    rank1 = load_file(run_dir / "rank1.safetensors")
    saved = ckpt.load_model_state(run_dir / "checkpoints" / "best")
    assert rank0.keys() == rank1.keys() == saved.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
        assert torch.equal(rank0[key], saved[key]), key


def test_ddp_reduced_validation_equals_single_process(ddp_run):
    recipe, run_dir = ddp_run
    last = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    model, state = load_run_model(run_dir, "last")
    splits = get_registries().datasets.get("phantom").build(recipe.data, recipe.seed)
    policy = get_registries().augmentations.get("mri").build(recipe.augment, recipe.data.img_size)
    transform = policy.eval_transform()
    from zoo_core.data.images import load_image

    images = torch.stack([transform(load_image(s.path)) for s in splits.val])
    labels = torch.tensor([s.label for s in splits.val])
    with torch.no_grad():
        logits = model(images)
    assert last["val_images"] == len(splits.val)
    correct = int((logits.argmax(1) == labels).sum())
    assert last["val_top1"] == correct / len(labels)
    assert last["val_loss"] == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-5)


def test_ddp_writes_one_run_folder_from_rank_zero(ddp_run):
    _, run_dir = ddp_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2
    metrics = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 2
    # Each epoch's training images: 36 training images padded to 18 per rank, counted on both ranks.
    assert json.loads(metrics[0])["train_images"] == 36
