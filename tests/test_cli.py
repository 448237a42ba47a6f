"""The zoo command: plugins, models, train errors and a short real run."""

import json

import timm
from click.testing import CliRunner

from helpers import tiny_recipe
from zoo_core.cli import cli


def run(*arguments):
    return CliRunner().invoke(cli, list(arguments), catch_exceptions=False)


def test_plugins_lists_rdnet_with_version_and_models():
    result = run("plugins")
    assert result.exit_code == 0
    assert "rdnet 0.1.0 (brain-zoo-rdnet)" in result.output
    assert "models: rdnet_tiny, rdnet_small, rdnet_base, rdnet_large" in result.output
    assert "datasets: kaggle, sample, phantom" in result.output


def test_plugins_reports_load_filter(monkeypatch):
    from zoo_core import plugins

    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "rdnet")
    plugins.reload_plugins()
    result = run("plugins")
    assert "ZOO_LOAD_PLUGINS restricts loading to: rdnet" in result.output
    assert "transnext" not in result.output.split("ZOO_LOAD_PLUGINS")[0]


def test_models_lists_parameter_counts():
    result = run("models")
    assert result.exit_code == 0
    expected = sum(p.numel() for p in timm.create_model("rdnet_tiny", num_classes=4).parameters()) / 1e6
    line = next(line for line in result.output.splitlines() if line.startswith("rdnet_tiny "))
    assert f"{expected:.2f}" in line
    assert "224x224" in line
    assert "TransNeXt: height and width must be positive multiples of 32" in result.output


def test_models_without_plugins_says_what_to_install(monkeypatch):
    from zoo_core import plugins

    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    monkeypatch.delenv("ZOO_PLUGIN_MODULES")
    plugins.reload_plugins()
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 1
    assert "pip install brain-zoo[rdnet]" in result.output


def test_train_unknown_override_names_closest_key(tmp_path):
    path = tmp_path / "recipe.yaml"
    tiny_recipe().save(path)
    result = CliRunner().invoke(cli, ["train", str(path), "--set", "optim.lrr=1e-4"])
    assert result.exit_code == 1
    assert "unknown key 'optim.lrr'" in result.output
    assert "did you mean 'optim.lr'" in result.output


def test_train_missing_plugin_names_extra(tmp_path, monkeypatch):
    from zoo_core import plugins

    monkeypatch.setattr(plugins, "_entry_points", lambda: [])
    plugins.reload_plugins()
    path = tmp_path / "recipe.yaml"
    tiny_recipe(model="transnext_tiny").save(path)
    result = CliRunner().invoke(cli, ["train", str(path), "--output", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "pip install brain-zoo[transnext]" in result.output


def test_train_and_eval_on_bundled_sample(tmp_path):
    path = tmp_path / "recipe.yaml"
    tiny_recipe("train.epochs=1", data="sample").save(path)
    run_dir = tmp_path / "run"
    result = run("train", str(path), "--output", str(run_dir), "--no-progress")
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["data"]["name"] == "sample"
    assert summary["test"]["num_images"] == 4
    assert f"test top1 {100 * summary['test']['top1']:.2f}% on 4 images" in result.output

    repeat = run("train", str(run_dir / "recipe.yaml"), "--output", str(tmp_path / "again"), "--no-progress")
    assert repeat.exit_code == 0, repeat.output
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert again["test"]["top1"] == summary["test"]["top1"]
    assert again["best_val_loss"] == summary["best_val_loss"]


def test_plugins_names_unknown_load_filter_entries(monkeypatch):
    from zoo_core import plugins

    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "rdnt")
    plugins.reload_plugins()
    result = run("plugins")
    assert "not installed, so not loaded: rdnt" in result.output


def test_export_refuses_to_overwrite_without_flag(tmp_path):
    from helpers import tiny_recipe as recipe_for
    from zoo_core.train.run import train_recipe

    run_dir = tmp_path / "run"
    train_recipe(recipe_for("train.epochs=1"), run_dir, progress=False)
    out_dir = tmp_path / "export"
    assert run("export", str(run_dir), str(out_dir)).exit_code == 0
    card = out_dir / "README.md"
    card.write_text("edited card")

    again = CliRunner().invoke(cli, ["export", str(run_dir), str(out_dir)])
    assert again.exit_code == 1
    assert "--overwrite" in again.output
    assert card.read_text() == "edited card"

    forced = run("export", str(run_dir), str(out_dir), "--overwrite")
    assert forced.exit_code == 0
    assert card.read_text() != "edited card"
