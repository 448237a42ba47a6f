"""``zoo compare`` on hand-written run folders and on real tiny training runs.

The hand-written folders follow the run-folder format exactly, so the numbers
in the tables can be checked against values worked out by hand. The real runs
train timm's test_convnext on the bundled sample and on the phantom dataset.
"""

import csv
import json
import types

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from zoo_core.cli import cli
from zoo_core.evaluate.bench import torch_threads
from zoo_core.evaluate.compare import CompareError, find_runs, load_run, write_comparison
from zoo_core.evaluate.metrics import classification_report
from zoo_core.evaluate.plots import pareto_front
from zoo_core.hookspecs import hookimpl
from zoo_core.plugins import reload_plugins
from zoo_core.registry import ModelSpec

CLASS_NAMES = ["glioma", "meningioma", "notumor", "pituitary"]


def tiny_plugin():
    """A plugin module that registers timm's test_convnext and test_resnet as zoo models."""
    plugin = types.ModuleType("tiny_compare_models")

    @hookimpl
    def register_models(register):
        for name in ("test_convnext", "test_resnet"):
            register(ModelSpec(name=name, family="test", default_img_size=32))

    plugin.register_models = register_models
    return plugin


def load_only(monkeypatch, plugin):
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    monkeypatch.delenv("ZOO_PLUGIN_MODULES", raising=False)
    reload_plugins(plugin)


@pytest.fixture
def tiny_models(monkeypatch):
    """Load only the tiny test models, then restore the normal plugins."""
    load_only(monkeypatch, tiny_plugin())
    yield
    monkeypatch.undo()
    reload_plugins()


def write_run(run_dir, *, name, seed, model, img_size, val_losses, train_losses, test_predictions,
              epoch_time=10.0, params=1000):
    """Write a finished run folder with the files `zoo train` leaves behind."""
    run_dir.mkdir(parents=True)
    recipe = {"name": name, "seed": seed, "model": {"name": model, "pretrained": None, "kwargs": {}},
              "data": {"name": "sample", "img_size": img_size}}
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe))

    lines = []
    for epoch, (train_loss, val_loss) in enumerate(zip(train_losses, val_losses), start=1):
        lines.append(json.dumps({
            "epoch": epoch, "train_loss": train_loss, "train_top1": 0.5, "val_loss": val_loss, "val_top1": 0.5,
            "lr": 1e-4, "epoch_time_s": epoch_time, "elapsed_s": epoch * epoch_time, "train_images": 12,
            "val_images": 4,
        }))
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")

    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    probs = np.full((8, 4), 0.1)
    probs[np.arange(8), test_predictions] = 0.7
    summary = {
        "recipe_name": name,
        "seed": seed,
        "model": {"name": model, "params": params, "img_size": img_size},
        "class_names": CLASS_NAMES,
        "train_time_s": len(val_losses) * epoch_time,
        "val": classification_report(labels[:4], probs[:4], CLASS_NAMES, "val"),
        "test": classification_report(labels, probs, CLASS_NAMES, "test"),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def write_run_folders(runs):
    """Write two seeds of one recipe (test_convnext, 32 px) and one run of another (test_resnet, 48 px)."""
    write_run(runs / "small-seed0", name="small", seed=0, model="test_convnext", img_size=32,
              val_losses=[2.0, 1.0, 1.04, 1.02], train_losses=[2.1, 1.2, 0.9, 0.8],
              test_predictions=[0, 1, 2, 3, 0, 1, 2, 0])
    write_run(runs / "small-seed1", name="small", seed=1, model="test_convnext", img_size=32,
              val_losses=[2.0, 1.5, 1.2, 1.0], train_losses=[2.1, 1.4, 1.0, 0.9],
              test_predictions=[0, 1, 2, 3, 0, 0, 0, 0])
    write_run(runs / "wide", name="wide", seed=0, model="test_resnet", img_size=48,
              val_losses=[1.5, 1.2, 1.1], train_losses=[1.6, 1.3, 1.0],
              test_predictions=[0, 1, 2, 3, 0, 1, 2, 3], epoch_time=20.0, params=5000)
    return runs


@pytest.fixture
def run_folders(tmp_path):
    return write_run_folders(tmp_path / "runs")


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """The run folders and the files of one comparison of them without latency, shared by several tests."""
    root = tmp_path_factory.mktemp("comparison")
    runs = write_run_folders(root / "runs")
    with pytest.MonkeyPatch.context() as monkeypatch:
        load_only(monkeypatch, tiny_plugin())
        written = write_comparison([runs], root / "out", with_latency=False)
    reload_plugins()
    return runs, written


def read_csv(path):
    with path.open() as handle:
        return {row.get("run") or row["group"]: row for row in csv.DictReader(handle)}


def test_pareto_front_hand_computed():
    costs = [1.0, 2.0, 3.0, 2.0]
    scores = [0.5, 0.7, 0.6, 0.4]
    # (3, 0.6) loses to (2, 0.7); (2, 0.4) loses to (1, 0.5).
    assert pareto_front(costs, scores) == [0, 1]


def test_pareto_front_keeps_ties():
    assert pareto_front([1.0, 1.0], [0.5, 0.5]) == [0, 1]


def test_find_runs_expands_parent(run_folders):
    names = [path.name for path in find_runs([run_folders])]
    assert names == ["small-seed0", "small-seed1", "wide"]


def test_find_runs_missing_folder(tmp_path):
    with pytest.raises(CompareError, match="run folder not found"):
        find_runs([tmp_path / "nowhere"])


def test_find_runs_folder_without_runs(tmp_path):
    with pytest.raises(CompareError, match="no summary.json"):
        find_runs([tmp_path])


def test_seeds_share_group_key(run_folders):
    first = load_run(run_folders / "small-seed0")
    second = load_run(run_folders / "small-seed1")
    other = load_run(run_folders / "wide")
    assert first.group_key == second.group_key
    assert first.group_key != other.group_key


def test_runs_csv_matches_run_files(comparison):
    run_folders, written = comparison
    rows = read_csv(written["runs_csv"])
    assert set(rows) == {"small-seed0", "small-seed1", "wide"}

    for name, row in rows.items():
        summary = json.loads((run_folders / name / "summary.json").read_text())
        assert row["model"] == summary["model"]["name"]
        assert int(row["img_size"]) == summary["model"]["img_size"]
        assert int(row["params"]) == summary["model"]["params"]
        assert float(row["test_top1"]) == summary["test"]["top1"]
        assert float(row["test_top1_ci_low"]) == summary["test"]["top1_ci"][0]
        assert float(row["test_top1_ci_high"]) == summary["test"]["top1_ci"][1]
        assert float(row["test_macro_f1"]) == summary["test"]["macro_f1"]
        assert int(row["test_images"]) == summary["test"]["num_images"]
        assert float(row["gflops"]) > 0
        assert row["latency_ms"] == ""

    # Hand-computed from the metrics written above.
    assert float(rows["small-seed0"]["test_top1"]) == pytest.approx(7 / 8)
    assert float(rows["small-seed1"]["test_top1"]) == pytest.approx(5 / 8)
    assert float(rows["small-seed0"]["train_time_s"]) == pytest.approx(40.0)
    assert float(rows["wide"]["train_time_s"]) == pytest.approx(60.0)
    # small-seed0: best 1.00 at epoch 2; 1.04 and 1.02 are within 5% but come later.
    assert int(rows["small-seed0"]["epochs_to_convergence"]) == 2
    assert int(rows["small-seed1"]["epochs_to_convergence"]) == 4
    assert float(rows["small-seed0"]["generalization_gap"]) == pytest.approx(1.0 - 1.2)
    # Last three epochs of small-seed0: changes +0.04, -0.02; sample std = 0.06 / sqrt(2).
    assert float(rows["small-seed0"]["stability"]) == pytest.approx(0.06 / 2 ** 0.5)


def test_groups_csv_mean_and_std(comparison):
    _, written = comparison
    groups = read_csv(written["groups_csv"])
    assert set(groups) == {"small", "wide"}

    small = groups["small"]
    assert int(small["runs"]) == 2
    assert small["seeds"] == "0 1"
    assert float(small["test_top1_mean"]) == pytest.approx(6 / 8)
    # Sample standard deviation of 7/8 and 5/8.
    assert float(small["test_top1_std"]) == pytest.approx(np.std([7 / 8, 5 / 8], ddof=1))
    assert float(small["epochs_to_convergence_mean"]) == pytest.approx(3.0)

    wide = groups["wide"]
    assert int(wide["runs"]) == 1
    assert float(wide["test_top1_mean"]) == pytest.approx(1.0)
    assert wide["test_top1_std"] == ""


def test_markdown_and_figures(comparison):
    _, written = comparison
    markdown = written["markdown"].read_text()
    assert "test split, 8 images" in markdown
    assert "| small-seed0 | 0 | test_convnext | 32 |" in markdown
    assert "| 2 of 4 (20.0) |" in markdown
    assert "87.50 [" in markdown
    assert "75.00 ± 17.68" in markdown
    assert "![Accuracy versus cost](pareto.png)" in markdown

    for key in ("pareto", "curves_overlay", "curves/small-seed0", "curves/small-seed1", "curves/wide"):
        with Image.open(written[key]) as image:
            assert image.format == "PNG"
            assert image.width > 400


def test_compare_cli_with_latency(tiny_models, run_folders, tmp_path):
    output = tmp_path / "report"
    result = CliRunner().invoke(cli, ["compare", str(run_folders / "small-seed0"), str(run_folders / "wide"),
                                      "--output", str(output), "--latency-runs", "2", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "# Model comparison" in result.stdout
    rows = read_csv(output / "runs.csv")
    assert set(rows) == {"small-seed0", "wide"}
    assert float(rows["wide"]["latency_ms"]) > 0
    assert rows["wide"]["latency_device"].startswith("cpu")
    assert "1 thread)" in rows["wide"]["latency_device"]


def test_compare_cli_missing_run(tmp_path):
    result = CliRunner().invoke(cli, ["compare", str(tmp_path / "absent"), "--output", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "run folder not found" in result.output
    assert "absent" in result.output


def test_compare_uses_stored_bench(tiny_models, run_folders, tmp_path):
    bench = {"model": "test_resnet", "img_size": 48, "flops": 4_000_000_000, "device": "cuda:0",
             "device_name": "Some GPU", "latency_ms": {"median": 1.5}}
    (run_folders / "wide" / "bench.json").write_text(json.dumps(bench))
    written = write_comparison([run_folders / "wide"], tmp_path / "out", with_latency=False)
    row = read_csv(written["runs_csv"])["wide"]
    assert float(row["gflops"]) == pytest.approx(4.0)
    assert float(row["latency_ms"]) == pytest.approx(1.5)
    assert "bench.json" in row["latency_device"]


def recipe_for(dataset, img_size, seed, name):
    from zoo_core.recipe import recipe_from_dict

    return recipe_from_dict({
        "name": name,
        "seed": seed,
        "model": {"name": "test_convnext"},
        "data": {"name": dataset, "img_size": img_size, "num_workers": 0, "val_fraction": 0.25,
                 "phantom_images_per_class": 4},
        "train": {"epochs": 2, "batch_size": 8, "early_stopping_patience": None, "amp": "off",
                  "device": "cpu"},
    })


@pytest.mark.slow
def test_compare_real_runs(tiny_models, tmp_path):
    from zoo_core.train.run import train_recipe

    runs = tmp_path / "runs"
    # One thread: the models are tiny, and more threads only add contention on a busy 2-core runner.
    with torch_threads(1):
        train_recipe(recipe_for("sample", 32, 0, "sample32"), runs / "sample32-seed0", progress=False)
        train_recipe(recipe_for("sample", 32, 1, "sample32"), runs / "sample32-seed1", progress=False)
        train_recipe(recipe_for("phantom", 48, 0, "phantom48"), runs / "phantom48", progress=False)

    written = write_comparison([runs], tmp_path / "out", with_latency=False)
    rows = read_csv(written["runs_csv"])
    assert set(rows) == {"sample32-seed0", "sample32-seed1", "phantom48"}
    for name, row in rows.items():
        summary = json.loads((runs / name / "summary.json").read_text())
        records = [json.loads(line) for line in (runs / name / "metrics.jsonl").read_text().splitlines()]
        assert int(row["img_size"]) == summary["model"]["img_size"]
        assert int(row["params"]) == summary["model"]["params"]
        assert float(row["test_top1"]) == summary["test"]["top1"]
        assert float(row["test_macro_f1"]) == summary["test"]["macro_f1"]
        assert int(row["test_images"]) == summary["test"]["num_images"]
        assert int(row["epochs_run"]) == len(records)
        assert float(row["train_time_s"]) == records[-1]["elapsed_s"]
        best = min(records, key=lambda record: record["val_loss"])
        assert int(row["best_epoch"]) == best["epoch"]

    groups = read_csv(written["groups_csv"])
    assert set(groups) == {"sample32", "phantom48"}
    assert int(groups["sample32"]["runs"]) == 2
    assert (tmp_path / "out" / "pareto.png").is_file()


def test_group_labels_name_the_differing_setting():
    from types import SimpleNamespace

    from zoo_core.evaluate.compare import _group_labels

    def fake_run(epochs, seed):
        recipe = {"name": "quickstart", "seed": seed, "train": {"epochs": epochs, "batch_size": 8}}
        return SimpleNamespace(recipe=recipe, name=f"run-{epochs}-{seed}", model="rdnet_tiny", img_size=96,
                               group_key=f"quickstart-{epochs}")

    runs = [fake_run(2, 0), fake_run(2, 1), fake_run(6, 0)]
    labels = _group_labels(runs)
    assert labels["quickstart-2"] == "quickstart (train.epochs=2)"
    assert labels["quickstart-6"] == "quickstart (train.epochs=6)"
