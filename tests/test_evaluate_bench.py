"""Efficiency benchmark on timm's tiny test_convnext (about 0.2 M parameters) at 32 pixels."""

import json
import types

import pytest
import timm
import torch
from click.testing import CliRunner

from zoo_core.cli import cli
from zoo_core.evaluate.bench import benchmark_model, count_flops, torch_threads
from zoo_core.hookspecs import hookimpl
from zoo_core.plugins import reload_plugins
from zoo_core.registry import ModelSpec

BENCH_FIELDS = (
    "model", "img_size", "batch_size", "device", "device_name", "dtype", "params", "flops", "macs", "gflops",
    "latency_ms", "inference_throughput_img_s", "train_throughput_img_s", "train_step_ms",
    "peak_memory_mb", "peak_memory_source", "torch_version",
)


def _check_min_size(height, width):
    if height < 16 or width < 16:
        raise ValueError(f"input size {height}x{width} is below 16 pixels")


@pytest.fixture
def tiny_model(monkeypatch):
    """Register timm's test_convnext as a zoo model, with no other plugin loaded."""
    plugin = types.ModuleType("tiny_bench_models")

    @hookimpl
    def register_models(register):
        register(ModelSpec(name="test_convnext", family="test", default_img_size=32,
                           check_img_size=_check_min_size))

    plugin.register_models = register_models
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    monkeypatch.delenv("ZOO_PLUGIN_MODULES", raising=False)
    reload_plugins(plugin)
    yield "test_convnext"
    monkeypatch.undo()
    reload_plugins()


def test_count_flops_linear_layer():
    # A 1x1 convolution from 3 to 5 channels on 4x4 pixels: 16 * 3 * 5 MACs, 2 FLOPs each.
    model = torch.nn.Conv2d(3, 5, kernel_size=1, bias=False)
    assert count_flops(model, 4) == 2 * 16 * 3 * 5


def test_benchmark_model_fields():
    model = timm.create_model("test_convnext", num_classes=4)
    result = benchmark_model(model, 32, batch_size=2, device="cpu", warmup=1, runs=3, throughput_runs=1, threads=1)
    assert result["params"] == sum(p.numel() for p in model.parameters())
    assert result["flops"] > 0
    assert result["macs"] == result["flops"] // 2
    assert result["latency_ms"]["runs"] == 3
    assert result["latency_ms"]["median"] > 0
    assert result["latency_ms"]["p90"] >= result["latency_ms"]["median"]
    assert result["inference_throughput_img_s"] > 0
    assert result["train_throughput_img_s"] > 0
    assert result["peak_memory_mb"] > 0
    assert "RSS" in result["peak_memory_source"]
    assert result["torch_threads"] == 1


def test_torch_threads_restores_count():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_benchmark_rejects_zero_batch():
    model = timm.create_model("test_convnext", num_classes=4)
    with pytest.raises(ValueError, match="batch_size=0"):
        benchmark_model(model, 32, batch_size=0, device="cpu")


def test_benchmark_rejects_unknown_device():
    model = timm.create_model("test_convnext", num_classes=4)
    with pytest.raises(ValueError, match="'tpu'"):
        benchmark_model(model, 32, device="tpu")


def test_bench_json_has_every_field(tiny_model):
    runner = CliRunner()
    result = runner.invoke(cli, ["bench", tiny_model, "--img-size", "32", "--batch-size", "2", "--runs", "3",
                                 "--warmup", "1", "--throughput-runs", "1", "--device", "cpu", "--threads", "1",
                                 "--json"])
    assert result.exit_code == 0, result.output

    # Log lines go to stderr; stdout contains the JSON object alone.
    report = json.loads(result.stdout)
    for field in BENCH_FIELDS:
        assert field in report, field
    assert report["model"] == tiny_model
    assert report["img_size"] == 32
    assert report["batch_size"] == 2
    assert report["params"] == sum(p.numel() for p in timm.create_model("test_convnext", num_classes=4).parameters())
    for field in ("median", "p90", "mean", "runs", "warmup"):
        assert field in report["latency_ms"], field


def test_bench_text_output(tiny_model):
    result = CliRunner().invoke(cli, ["bench", tiny_model, "--batch-size", "2", "--runs", "2", "--warmup", "0",
                                      "--throughput-runs", "1", "--device", "cpu", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "test_convnext at 32x32 on cpu" in result.stdout
    assert "latency (batch 1)" in result.stdout


def test_bench_unknown_model(tiny_model):
    result = CliRunner().invoke(cli, ["bench", "no_such_net", "--device", "cpu"])
    assert result.exit_code != 0
    assert "no_such_net" in result.output
    assert "zoo models" in result.output


def test_bench_image_too_small(tiny_model):
    result = CliRunner().invoke(cli, ["bench", tiny_model, "--img-size", "8", "--device", "cpu"])
    assert result.exit_code != 0
    assert "img_size=8" in result.output
