"""Loading models from run, checkpoint and Hub-layout folders and from hf-hub ids; zoo predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import timm
import torch
from click.testing import CliRunner

from zoo_core.cli import cli
from zoo_core.data.classes import CLASS_NAMES
from zoo_core.hub import HubError, export_run, load_model
from zoo_core.train import checkpoint as ckpt
from zoo_core.train.evaluation import evaluate_run, load_run_model

PREPROCESSING = {"input_size": [3, 32, 32], "interpolation": "bicubic", "crop_pct": 1.0, "crop_mode": "center",
                 "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_hand_run(run_dir: Path, seed: int = 0) -> torch.nn.Module:
    """Write a run folder in the trainer's format around a randomly initialised test_convnext."""
    torch.manual_seed(seed)
    model = timm.create_model("test_convnext", num_classes=len(CLASS_NAMES)).eval()
    recipe = {"name": "hand", "model": {"name": "test_convnext", "pretrained": None, "kwargs": {}},
              "data": {"name": "sample", "img_size": 32}}
    state = {"epoch": 1, "best_val_loss": 1.3, "architecture": "test_convnext", "num_classes": len(CLASS_NAMES),
             "class_names": list(CLASS_NAMES), "img_size": 32, "preprocessing": PREPROCESSING, "recipe": recipe}
    ckpt.save_checkpoint(run_dir / "checkpoints" / "best", ckpt.unwrap_state_dict(model.state_dict()), state)
    test_report = {"split": "test", "num_images": 4, "top1": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.4,
                   "top1_ci": [0.0, 1.0], "macro_f1_ci": [0.0, 0.8], "ece": 0.1, "per_class": {},
                   "settings": {"interval_method": "percentile bootstrap over images", "bootstrap_resamples": 10}}
    summary = {"recipe_name": "hand", "test": test_report, "train_time_s": 12.0, "epochs_run": 1, "best_epoch": 1,
               "device": "cpu", "world_size": 1, "hardware": {"cpu": "x86_64", "cpu_count": 2, "cuda_device": None},
               "data": {"name": "sample"}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return model


def write_hub_cache(cache_dir: Path, repo_id: str, files_dir: Path, commit: str = COMMIT,
                    names: tuple[str, ...] | None = None) -> Path:
    """Lay out ``files_dir`` as the snapshot ``commit`` of ``repo_id`` in a huggingface_hub cache."""
    repo_folder = cache_dir / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in files_dir.iterdir():
        if path.is_file() and (names is None or path.name in names):
            shutil.copy(path, snapshot / path.name)
    (repo_folder / "refs").mkdir()
    (repo_folder / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture
def hand_run(tmp_path):
    run_dir = tmp_path / "run"
    model = make_hand_run(run_dir)
    return run_dir, model


def test_load_model_run_folder(hand_run):
    run_dir, model = hand_run
    loaded = load_model(run_dir)
    x = torch.randn(2, 3, 32, 32)
    assert loaded.class_names == list(CLASS_NAMES)
    assert loaded.preprocessing == PREPROCESSING
    assert torch.equal(loaded.model(x), model(x))


def test_load_model_checkpoint_folder(hand_run):
    run_dir, model = hand_run
    loaded = load_model(run_dir / "checkpoints" / "best")
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(loaded.model(x), model(x))


def test_load_run_model_keeps_state_keys(hand_run):
    run_dir, _ = hand_run
    _, state = load_run_model(run_dir, "best")
    assert state["architecture"] == "test_convnext"
    assert state["num_classes"] == 4
    assert state["class_names"] == list(CLASS_NAMES)
    assert state["preprocessing"] == PREPROCESSING


def test_export_then_load_folder(hand_run, tmp_path):
    run_dir, model = hand_run
    export_dir = export_run(run_dir, tmp_path / "export")
    loaded = load_model(export_dir)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded.model(x), model(x))
    assert loaded.class_names == list(CLASS_NAMES)
    assert loaded.preprocessing == PREPROCESSING


def test_evaluate_run_on_export(hand_run, tmp_path, sample_dir):
    run_dir, _ = hand_run
    export_dir = export_run(run_dir, tmp_path / "export")
    from_run = evaluate_run(run_dir, str(sample_dir), batch_size=8)
    from_export = evaluate_run(str(export_dir), str(sample_dir), batch_size=8)
    assert from_export["num_images"] == 17
    assert from_export["top1"] == from_run["top1"]
    assert from_export["confusion_matrix"] == from_run["confusion_matrix"]


def test_hf_hub_offline_cache_load(hand_run, tmp_path, hub_cache):
    run_dir, model = hand_run
    export_dir = export_run(run_dir, tmp_path / "export")
    write_hub_cache(hub_cache, "brain-zoo/hand", export_dir)
    x = torch.randn(2, 3, 32, 32)
    for source in ("hf-hub:brain-zoo/hand", "hf-hub:brain-zoo/hand@main", f"hf-hub:brain-zoo/hand@{COMMIT}"):
        loaded = load_model(source)
        assert loaded.source == source
        assert torch.equal(loaded.model(x), model(x))


def test_hf_hub_offline_without_cache_fails_fast(hub_cache):
    with pytest.raises(HubError) as caught:
        load_model("hf-hub:brain-zoo/not-downloaded")
    message = str(caught.value)
    assert "not in the Hugging Face cache" in message
    assert "hf download" in message
    assert "local folder" in message
    assert str(hub_cache) in message


def test_predict_cli_offline_error(hub_cache, sample_dir):
    image = next((sample_dir / "glioma").iterdir())
    result = CliRunner().invoke(cli, ["predict", "hf-hub:brain-zoo/not-downloaded", str(image)])
    assert result.exit_code == 1
    assert "not in the Hugging Face cache" in result.output
    assert "Traceback" not in result.output


def test_hf_hub_without_safetensors_rejected(hand_run, tmp_path, hub_cache):
    run_dir, model = hand_run
    export_dir = export_run(run_dir, tmp_path / "export")
    torch.save(model.state_dict(), export_dir / "pytorch_model.bin")
    write_hub_cache(hub_cache, "brain-zoo/pickled", export_dir, names=("config.json", "pytorch_model.bin"))
    with pytest.raises(HubError, match="--allow-pickle"):
        load_model("hf-hub:brain-zoo/pickled")
    loaded = load_model("hf-hub:brain-zoo/pickled", allow_pickle=True)
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(loaded.model(x), model(x))


def test_pickle_folder_needs_flag(hand_run, tmp_path):
    run_dir, model = hand_run
    export_dir = export_run(run_dir, tmp_path / "export")
    (export_dir / "model.safetensors").unlink()
    torch.save({"model": model.state_dict()}, export_dir / "pytorch_model.bin")
    with pytest.raises(HubError, match="pickle checkpoint"):
        load_model(export_dir)
    loaded = load_model(export_dir, allow_pickle=True)
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(loaded.model(x), model(x))


class Payload:
    """An object that torch.load(weights_only=True) must not restore."""


def test_pickle_with_objects_rejected(hand_run, tmp_path):
    run_dir, model = hand_run
    export_dir = export_run(run_dir, tmp_path / "export")
    (export_dir / "model.safetensors").unlink()
    torch.save({"model": model.state_dict(), "extra": Payload()}, export_dir / "pytorch_model.bin")
    with pytest.raises(HubError, match="weights_only=True"):
        load_model(export_dir, allow_pickle=True)


def test_weights_of_other_model_rejected(hand_run, tmp_path):
    run_dir, _ = hand_run
    export_dir = export_run(run_dir, tmp_path / "export")
    config = json.loads((export_dir / "config.json").read_text())
    config["architecture"] = "test_resnet"
    (export_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(HubError, match="do not match"):
        load_model(export_dir)


def test_unknown_source_messages(tmp_path):
    with pytest.raises(HubError, match="hf-hub:org/name"):
        load_model("org/name")
    with pytest.raises(HubError, match="neither a run folder"):
        load_model(tmp_path)
    with pytest.raises(HubError, match="invalid Hugging Face model id"):
        load_model("hf-hub:no-slash")


def test_predict_cli_prints_line_per_image(hand_run, sample_dir):
    run_dir, _ = hand_run
    images = sorted(str(path) for path in sample_dir.rglob("*.jpg"))
    result = CliRunner().invoke(cli, ["predict", str(run_dir), *images, "--top-k", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == len(images) == 17
    for line, image in zip(lines, images):
        assert line.startswith(f"{image}: ")
        assert line.split(": ", 1)[1].split()[0] in CLASS_NAMES
        assert line.count("%") == 2


def test_predict_cli_json(hand_run, sample_dir):
    run_dir, _ = hand_run
    images = sorted(str(path) for path in sample_dir.rglob("*.jpg"))
    result = CliRunner().invoke(cli, ["predict", str(run_dir), *images, "--json", "--top-k", "3"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["class_names"] == list(CLASS_NAMES)
    assert [entry["image"] for entry in payload["predictions"]] == images
    for entry in payload["predictions"]:
        assert set(entry["probs"]) == set(CLASS_NAMES)
        assert abs(sum(entry["probs"].values()) - 1.0) < 1e-5
        assert entry["label"] == max(entry["probs"], key=entry["probs"].get)
        assert len(entry["top_k"]) == 3
        assert len(entry["logits"]) == 4
    assert payload["errors"] == []


def test_predict_reports_bad_image_and_continues(hand_run, sample_dir, tmp_path):
    run_dir, _ = hand_run
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    good = sorted(str(path) for path in sample_dir.rglob("*.jpg"))[:2]
    result = CliRunner().invoke(cli, ["predict", str(run_dir), good[0], str(broken), good[1], "--json"])
    assert result.exit_code == 1
    assert f"cannot read image {broken}" in result.stderr
    payload = json.loads(result.stdout)
    assert [entry["image"] for entry in payload["predictions"]] == good
    assert payload["errors"][0]["image"] == str(broken)


def test_eval_cli_on_export(hand_run, tmp_path):
    run_dir, _ = hand_run
    export_dir = export_run(run_dir, tmp_path / "export")
    result = CliRunner().invoke(cli, ["eval", str(export_dir), "--data", "sample", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    # 'sample' means the bundled sample's test split: one image per class.
    assert report["num_images"] == 4
    assert report["run"] == str(export_dir)


def test_model_card_names_base_model(hand_run):
    import yaml

    from zoo_core.hub import render_model_card

    run_dir, model = hand_run
    state = json.loads((run_dir / "checkpoints" / "best" / "trainer_state.json").read_text())
    state["recipe"]["model"]["pretrained"] = "default"
    metadata = yaml.safe_load(render_model_card(state, None, model).split("---\n")[1])
    assert metadata["base_model"] == model.pretrained_cfg["hf_hub_id"]
    state["recipe"]["model"]["pretrained"] = "hf-hub:my-lab/start@v2"
    card = render_model_card(state, None, model, license="cc-by-nc-4.0")
    metadata = yaml.safe_load(card.split("---\n")[1])
    assert metadata["base_model"] == "my-lab/start"
    assert metadata["license"] == "cc-by-nc-4.0"
    assert "No test metrics were recorded" in card


def test_unknown_architecture_named(hand_run, tmp_path):
    run_dir, _ = hand_run
    export_dir = export_run(run_dir, tmp_path / "export")
    config = json.loads((export_dir / "config.json").read_text())
    config["architecture"] = "transnext_gigantic"
    (export_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(HubError, match="transnext_gigantic"):
        load_model(export_dir)


def test_predict_folder_and_missing_path(hand_run, sample_dir, tmp_path):
    run_dir, _ = hand_run
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "missing.jpg"
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(sample_dir), str(missing), str(empty), "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert len(payload["predictions"]) == 17
    assert [error["image"] for error in payload["errors"]] == [str(missing), str(empty)]
    assert "file or folder not found" in result.stderr
    assert "2 of 19 inputs could not be read" in result.stderr
