"""The default trainer on real tiny models: learning, checkpoints, class order and failures."""

import json

import pytest
import torch
from safetensors.torch import load_file

from helpers import tiny_recipe
from zoo_core.data.classes import CLASS_NAMES
from zoo_core.train import checkpoint as ckpt
from zoo_core.train.evaluation import load_run_model
from zoo_core.train.run import train_recipe
from zoo_core.train.trainer import TrainingError


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    """Return one phantom run, long enough to learn, shared by the checks below."""
    run_dir = tmp_path_factory.mktemp("learned") / "run"
    recipe = tiny_recipe("train.epochs=8", "data.phantom_images_per_class=24", "data.img_size=48")
    summary = train_recipe(recipe, run_dir, progress=False)
    return run_dir, summary


def test_training_lowers_loss_on_phantom(learned_run):
    run_dir, summary = learned_run
    metrics = read_metrics(run_dir)
    assert len(metrics) == 8
    assert metrics[-1]["train_loss"] < 0.7 * metrics[0]["train_loss"]
    assert min(m["val_loss"] for m in metrics) < metrics[0]["val_loss"]
    # Four balanced classes: chance is 25%.
    assert summary["val"]["top1"] >= 0.6


def test_run_folder_contents(learned_run):
    run_dir, summary = learned_run
    for name in ("recipe.yaml", "metrics.jsonl", "summary.json", "checkpoints/best/model.safetensors",
                 "checkpoints/last/model.safetensors", "checkpoints/last/optimizer.safetensors",
                 "checkpoints/last/trainer_state.json"):
        assert (run_dir / name).is_file(), name
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["test"]["num_images"] == summary["test"]["num_images"]
    assert on_disk["test"]["split"] == "test"
    assert set(on_disk["versions"]) >= {"python", "torch", "timm", "brain-zoo"}
    assert on_disk["peak_memory_mb"] > 0


def test_class_order_stored_everywhere(learned_run):
    run_dir, summary = learned_run
    assert summary["class_names"] == list(CLASS_NAMES)
    assert list(CLASS_NAMES) == ["glioma", "meningioma", "notumor", "pituitary"]
    state = ckpt.load_trainer_state(run_dir / "checkpoints" / "best")
    assert state["class_names"] == list(CLASS_NAMES)
    with open(run_dir / "checkpoints" / "best" / "model.safetensors", "rb"):
        pass
    from safetensors import safe_open

    with safe_open(run_dir / "checkpoints" / "best" / "model.safetensors", "pt") as handle:
        assert json.loads(handle.metadata()["class_names"]) == list(CLASS_NAMES)


def test_best_checkpoint_is_lowest_val_loss(learned_run):
    run_dir, summary = learned_run
    metrics = read_metrics(run_dir)
    best = min(metrics, key=lambda m: m["val_loss"])
    assert summary["best_epoch"] == best["epoch"]
    assert ckpt.load_trainer_state(run_dir / "checkpoints" / "best")["epoch"] == best["epoch"]


def test_checkpoint_round_trip_identical_logits(learned_run, tmp_path):
    run_dir, _ = learned_run
    model, state = load_run_model(run_dir, "best")
    images = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        before = model(images)
    copy_dir = tmp_path / "copy"
    ckpt.save_checkpoint(copy_dir, ckpt.unwrap_state_dict(model.state_dict()), {"epoch": 1})
    import timm

    fresh = timm.create_model(state["architecture"], num_classes=4).eval()
    fresh.load_state_dict(load_file(copy_dir / ckpt.MODEL_FILE))
    with torch.no_grad():
        after = fresh(images)
    assert torch.equal(before, after)


def test_save_checkpoint_failure_keeps_previous(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints" / "last"
    ckpt.save_checkpoint(folder, {"w": torch.ones(2)}, {"epoch": 1})

    def broken_save(tensors, path, metadata=None):
        path.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(folder, {"w": torch.zeros(2)}, {"epoch": 2})
    assert ckpt.load_trainer_state(folder)["epoch"] == 1
    assert torch.equal(ckpt.load_model_state(folder)["w"], torch.ones(2))
    assert sorted(p.name for p in folder.parent.iterdir()) == ["last"]


def test_crash_between_renames_falls_back_to_previous(tmp_path):
    folder = tmp_path / "checkpoints" / "last"
    ckpt.save_checkpoint(folder, {"w": torch.ones(2)}, {"epoch": 3})
    folder.rename(folder.parent / ".last.old")
    assert ckpt.load_trainer_state(folder)["epoch"] == 3
    ckpt.save_checkpoint(folder, {"w": torch.zeros(2)}, {"epoch": 4})
    assert ckpt.load_trainer_state(folder)["epoch"] == 4
    assert not (folder.parent / ".last.old").exists()


def test_non_finite_loss_stops_and_keeps_last_good(tmp_path):
    run_dir = tmp_path / "run"
    # 24 training images in batches of 8: epoch 1 has three good steps, epoch 2 turns NaN.
    recipe = tiny_recipe("model.kwargs={nan_after: 3}", model="zoo_test_nan")
    with pytest.raises(TrainingError, match="non-finite training loss") as error:
        train_recipe(recipe, run_dir, progress=False)
    assert "epoch 2" in str(error.value)
    assert str(run_dir / "checkpoints") in str(error.value)
    state = ckpt.load_trainer_state(run_dir / "checkpoints" / "last")
    assert state["epoch"] == 1
    weights = ckpt.load_model_state(run_dir / "checkpoints" / "last")
    assert all(torch.isfinite(tensor).all() for tensor in weights.values())
    assert len(read_metrics(run_dir)) == 1
    assert not (run_dir / "summary.json").exists()


def test_existing_run_folder_not_overwritten(learned_run):
    run_dir, _ = learned_run
    with pytest.raises(FileExistsError, match="--resume"):
        train_recipe(tiny_recipe(), run_dir, progress=False)


def test_validation_split_disjoint_from_testing():
    from zoo_core.plugins import get_registries

    for name in ("phantom", "sample"):
        recipe = tiny_recipe(f"data.name={name}")
        splits = get_registries().datasets.get(name).build(recipe.data, recipe.seed)
        train, val, test = ({s.path for s in part} for part in (splits.train, splits.val, splits.test))
        assert train
        assert val
        assert test
        assert not val & test
        assert not train & test
        assert not train & val
        if name == "phantom":
            assert all("/Training/" in path for path in val)
            assert all("/Testing/" in path for path in test)


def test_eval_warns_when_data_overlaps_training(tmp_path):
    from click.testing import CliRunner

    from zoo_core.cli import cli

    run_dir = tmp_path / "run"
    train_recipe(tiny_recipe("train.epochs=1", data="sample"), run_dir, progress=False)
    runner = CliRunner()
    on_sample = runner.invoke(cli, ["eval", str(run_dir), "--data", "sample"])
    assert on_sample.exit_code == 0, on_sample.output
    assert "bundled sample (test) split" in on_sample.output
    assert "4 images" in on_sample.output
    assert "measure fit" not in on_sample.output
    for name in CLASS_NAMES:
        assert name in on_sample.output

    from zoo_core.paths import SAMPLE_DIR

    on_folder = runner.invoke(cli, ["eval", str(run_dir), "--data", str(SAMPLE_DIR)])
    assert on_folder.exit_code == 0, on_folder.output
    assert "17 images" in on_folder.output
    assert "measure fit, not generalisation" in on_folder.output

    from zoo_core.data.phantom import generate_phantom_dataset

    other = generate_phantom_dataset(tmp_path / "phantom", per_class=4, size=64, seed=1)
    on_other = runner.invoke(cli, ["eval", str(run_dir), "--data", str(other)])
    assert on_other.exit_code == 0, on_other.output
    assert "Testing" in on_other.output
    assert "measure fit" not in on_other.output


def test_model_kwargs_size_rule_checked_before_training():
    from zoo_core.models import ModelConfigError, create_model

    recipe = tiny_recipe("model.kwargs={dilations: [8, 4, 2, 1]}", "data.img_size=128", model="medvit2_tiny")
    with pytest.raises(ModelConfigError, match="128x128.*medvit2_tiny.*dilations"):
        create_model(recipe.model, num_classes=4, img_size=128)


def test_unsupported_size_error_names_size_and_rule():
    from zoo_core.models import ModelConfigError, check_img_size

    with pytest.raises(ModelConfigError, match="input size 138x138.*multiples of 32") as error:
        check_img_size("transnext_tiny", 138)
    assert "nearest supported square sizes are 128 and 160" in str(error.value)


def test_failed_start_leaves_no_run_folder(tmp_path):
    from zoo_core.models import ModelConfigError

    run_dir = tmp_path / "run"
    with pytest.raises(ModelConfigError):
        train_recipe(tiny_recipe("data.img_size=16"), run_dir, progress=False)
    assert not run_dir.exists()

    # A failure after the recipe was written, before any checkpoint, also cleans up.
    with pytest.raises(TrainingError):
        train_recipe(tiny_recipe("model.kwargs={nan_after: 0}", model="zoo_test_nan"), run_dir, progress=False)
    assert not run_dir.exists()


def test_resume_of_finished_run_rejected(learned_run):
    from zoo_core.train.run import resume_run

    run_dir, _ = learned_run
    with pytest.raises(FileExistsError, match="already finished"):
        resume_run(run_dir, progress=False)


def test_metrics_times_are_consistent(learned_run):
    run_dir, summary = learned_run
    metrics = read_metrics(run_dir)
    for earlier, later in zip(metrics, metrics[1:]):
        assert later["elapsed_s"] >= earlier["elapsed_s"] + later["epoch_time_s"] * 0.999
    assert metrics[0]["elapsed_s"] >= metrics[0]["epoch_time_s"]
    assert summary["train_time_s"] == metrics[-1]["elapsed_s"]
