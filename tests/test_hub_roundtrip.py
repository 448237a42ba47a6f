"""Round trip of a really trained run: export, then timm and ``zoo predict`` give the checkpoint's logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

from helpers import tiny_recipe
from test_hub_load import write_hub_cache
from zoo_core.cli import cli
from zoo_core.data.classes import CLASS_NAMES
from zoo_core.data.images import load_image
from zoo_core.recipe import load_recipe
from zoo_core.train.evaluation import eval_transform_from_preprocessing
from zoo_core.train.run import train_recipe

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("hub-roundtrip") / "run"
    train_recipe(tiny_recipe("train.epochs=1"), run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("hub-export") / "tiny"
    result = CliRunner().invoke(cli, ["export", str(trained_run), str(out_dir), "--repo-id", "brain-zoo/tiny"])
    assert result.exit_code == 0, result.output
    return out_dir


def checkpoint_model(run_dir: Path) -> tuple[torch.nn.Module, dict]:
    """Build the best checkpoint's model directly from its files, without zoo_core.hub."""
    best = run_dir / "checkpoints" / "best"
    state = json.loads((best / "trainer_state.json").read_text())
    model = timm.create_model(state["architecture"], num_classes=state["num_classes"])
    model.load_state_dict(load_file(best / "model.safetensors"))
    return model.eval(), state


def sample_batch(sample_dir: Path, preprocessing: dict) -> tuple[list[str], torch.Tensor]:
    images = sorted(str(path) for path in sample_dir.rglob("*.jpg"))
    transform = eval_transform_from_preprocessing(preprocessing)
    return images, torch.stack([transform(load_image(path)) for path in images])


def test_export_config_for_timm(trained_run, exported):
    config = json.loads((exported / "config.json").read_text())
    state = json.loads((trained_run / "checkpoints" / "best" / "trainer_state.json").read_text())
    assert config["architecture"] == "test_convnext"
    assert config["num_classes"] == 4
    assert config["label_names"] == list(CLASS_NAMES)
    assert config["model_args"] == state["recipe"]["model"]["kwargs"]
    pretrained_cfg = config["pretrained_cfg"]
    for key in ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std"):
        assert pretrained_cfg[key] == state["preprocessing"][key], key
    assert config["brain_zoo"]["recipe"] == state["recipe"]


def test_export_model_card(trained_run, exported):
    card = (exported / "README.md").read_text()
    _, front_matter, body = card.split("---\n", 2)
    metadata = yaml.safe_load(front_matter)
    summary = json.loads((trained_run / "summary.json").read_text())
    assert metadata["library_name"] == "timm"
    assert {"image-classification", "brain-zoo", "test_convnext"} <= set(metadata["tags"])
    assert metadata["license"] == "apache-2.0"
    assert metadata["datasets"] == ["brain-zoo-phantom"]
    assert metadata["metrics"] == ["accuracy", "f1"]
    # Phantom figures are not benchmark results, so the Hub metadata carries none.
    assert "model-index" not in metadata
    assert f"| test | {summary['test']['num_images']} |" in body
    assert f"| val | {summary['val']['num_images']} |" in body
    assert "not a medical device" in body
    assert "Training time:" in body
    assert "Hardware:" in body
    assert "```yaml\nname: tiny\n" in body
    assert 'timm.create_model("hf-hub:brain-zoo/tiny", pretrained=True)' in body


def test_timm_local_dir_matches_checkpoint(trained_run, exported, sample_dir):
    reference, state = checkpoint_model(trained_run)
    model = timm.create_model(f"local-dir:{exported}", pretrained=True).eval()
    _, batch = sample_batch(sample_dir, state["preprocessing"])
    with torch.no_grad():
        expected = reference(batch)
        assert torch.allclose(model(batch), expected, atol=1e-6)
    assert list(model.pretrained_cfg["label_names"]) == list(CLASS_NAMES)
    assert list(model.pretrained_cfg["input_size"]) == state["preprocessing"]["input_size"]


def test_predict_cli_matches_checkpoint(trained_run, exported, sample_dir):
    reference, state = checkpoint_model(trained_run)
    images, batch = sample_batch(sample_dir, state["preprocessing"])
    with torch.no_grad():
        expected = reference(batch)
    for source in (exported, trained_run):
        result = CliRunner().invoke(cli, ["predict", str(source), *images, "--json"])
        assert result.exit_code == 0, result.output
        predictions = json.loads(result.output)["predictions"]
        assert [entry["image"] for entry in predictions] == images
        logits = torch.tensor([entry["logits"] for entry in predictions])
        assert torch.allclose(logits, expected, atol=1e-5), source


def test_timm_hf_hub_from_offline_cache(trained_run, exported, sample_dir, tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    write_hub_cache(cache, "brain-zoo/tiny", exported)
    # timm reads the cache folder and offline flag that huggingface_hub fixed at import time.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))

    reference, state = checkpoint_model(trained_run)
    images, batch = sample_batch(sample_dir, state["preprocessing"])
    model = timm.create_model("hf-hub:brain-zoo/tiny", pretrained=True).eval()
    with torch.no_grad():
        assert torch.allclose(model(batch), reference(batch), atol=1e-6)

    result = CliRunner().invoke(cli, ["predict", "hf-hub:brain-zoo/tiny", *images[:3], "--json"])
    assert result.exit_code == 0, result.output
    logits = torch.tensor([entry["logits"] for entry in json.loads(result.output)["predictions"]])
    with torch.no_grad():
        assert torch.allclose(logits, reference(batch[:3]), atol=1e-5)


@pytest.mark.slow
def test_quickstart_rdnet_round_trip(tmp_path, sample_dir):
    pytest.importorskip("zoo_rdnet")
    recipe = load_recipe(REPO_ROOT / "recipes" / "quickstart.yaml")
    recipe.train.epochs = 1
    recipe.data.img_size = 32
    run_dir = tmp_path / "run"
    train_recipe(recipe, run_dir, progress=False)
    export_dir = tmp_path / "export"
    result = CliRunner().invoke(cli, ["export", str(run_dir), str(export_dir)])
    assert result.exit_code == 0, result.output

    reference, state = checkpoint_model(run_dir)
    images, batch = sample_batch(sample_dir, state["preprocessing"])
    model = timm.create_model(f"local-dir:{export_dir}", pretrained=True).eval()
    with torch.no_grad():
        expected = reference(batch)
        assert torch.allclose(model(batch), expected, atol=1e-5)
    result = CliRunner().invoke(cli, ["predict", str(export_dir), *images, "--json"])
    assert result.exit_code == 0, result.output
    logits = torch.tensor([entry["logits"] for entry in json.loads(result.output)["predictions"]])
    assert torch.allclose(logits, expected, atol=1e-4)


def test_card_reports_results_only_for_full_dataset(trained_run):
    from zoo_core import hub

    summary = json.loads((trained_run / "summary.json").read_text())
    state = json.loads((trained_run / "checkpoints" / "best" / "trainer_state.json").read_text())
    summary["data"]["name"] = "kaggle"
    front_matter = hub._card_metadata(state, summary, "tiny", None, "apache-2.0", hub.KAGGLE_DATASET, None)
    metadata = yaml.safe_load(front_matter.strip().strip("-"))
    results = metadata["model-index"][0]["results"][0]
    assert results["dataset"]["split"] == "test"
    assert results["metrics"][0]["value"] == round(summary["test"]["top1"], 4)
