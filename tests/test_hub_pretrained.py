"""Pretrained initialisation from files and the Hugging Face cache (recipe ``model.pretrained``)."""

from __future__ import annotations

import logging

import pytest
import timm
import torch
from safetensors.torch import save_file

from test_hub_load import write_hub_cache
from zoo_core.models import ModelConfigError, create_model
from zoo_core.recipe import ModelConfig

# Storages saved while this flag is set are tagged as CUDA storages, as torch.save
# does on a GPU machine, so the file needs map_location to load on a CPU.
_TAG_AS_CUDA = []


def _cuda_tagger(storage):
    return "cuda:0" if _TAG_AS_CUDA else None


def _no_deserializer(obj, location):
    return None


torch.serialization.register_package(1, _cuda_tagger, _no_deserializer)


def source_model(num_classes: int, name: str = "test_convnext") -> torch.nn.Module:
    torch.manual_seed(1)
    return timm.create_model(name, num_classes=num_classes)


def build(pretrained: str, num_classes: int = 4) -> torch.nn.Module:
    torch.manual_seed(2)
    return create_model(ModelConfig(name="test_convnext", pretrained=pretrained), num_classes=num_classes)


def assert_same_backbone(model: torch.nn.Module, source: torch.nn.Module) -> None:
    target = model.state_dict()
    for key, tensor in source.state_dict().items():
        if not key.startswith("head.fc."):
            assert torch.equal(target[key], tensor), key


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_pretrained_head_replaced_with_warning(tmp_path, caplog):
    source = source_model(num_classes=10)
    path = tmp_path / "in10.safetensors"
    save_file(source.state_dict(), path)
    with caplog.at_level(logging.WARNING, logger="zoo_core.models"):
        model = build(str(path))
    assert model.head.fc.weight.shape[0] == 4
    assert_same_backbone(model, source)
    assert "replacing the classifier head" in caplog.text
    assert "head.fc.weight (10, 64) -> (4, 64)" in caplog.text


def test_pretrained_same_head_kept(tmp_path, caplog):
    source = source_model(num_classes=4)
    path = tmp_path / "in4.safetensors"
    save_file(source.state_dict(), path)
    with caplog.at_level(logging.WARNING, logger="zoo_core.models"):
        model = build(str(path))
    assert torch.equal(model.head.fc.weight, source.head.fc.weight)
    assert "replacing" not in caplog.text


def test_pretrained_ddp_prefix_pth(tmp_path):
    source = source_model(num_classes=4)
    wrapped = {f"module.{key}": tensor for key, tensor in source.state_dict().items()}
    path = tmp_path / "ddp.pth"
    torch.save({"epoch": 3, "model": wrapped}, path)
    model = build(str(path))
    assert_same_backbone(model, source)
    assert torch.equal(model.head.fc.weight, source.head.fc.weight)


def test_pretrained_gpu_saved_pth_on_cpu(tmp_path):
    source = source_model(num_classes=4)
    path = tmp_path / "gpu.pth"
    _TAG_AS_CUDA.append(True)
    try:
        torch.save({"state_dict": source.state_dict()}, path)
    finally:
        _TAG_AS_CUDA.clear()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    model = build(str(path))
    assert all(tensor.device.type == "cpu" for tensor in model.state_dict().values())
    assert_same_backbone(model, source)


class Payload:
    """An object that torch.load(weights_only=True) must not restore."""


def test_pretrained_pickle_objects_rejected(tmp_path):
    path = tmp_path / "unsafe.pth"
    torch.save({"model": source_model(4).state_dict(), "extra": Payload()}, path)
    with pytest.raises(ModelConfigError, match="weights_only=True"):
        build(str(path))


def test_pretrained_other_architecture_rejected(tmp_path):
    path = tmp_path / "resnet.safetensors"
    save_file(source_model(4, "test_resnet").state_dict(), path)
    with pytest.raises(ModelConfigError, match="model.pretrained=null"):
        build(str(path))


def test_pretrained_missing_file_rejected(tmp_path):
    with pytest.raises(ModelConfigError, match="is not a file"):
        build(str(tmp_path / "absent.pth"))


def test_pretrained_default_offline_fails_fast(hub_cache):
    with pytest.raises(ModelConfigError) as caught:
        build("default")
    message = str(caught.value)
    assert "not in the Hugging Face cache" in message
    assert "hf download" in message
    assert "model.pretrained=null" in message


def test_pretrained_default_from_cache(hub_cache, tmp_path, caplog):
    hub_id = timm.create_model("test_convnext").pretrained_cfg["hf_hub_id"]
    source = source_model(num_classes=10)
    files = tmp_path / "files"
    files.mkdir()
    save_file(source.state_dict(), files / "model.safetensors")
    write_hub_cache(hub_cache, hub_id, files)
    with caplog.at_level(logging.WARNING, logger="zoo_core.models"):
        model = build("default")
    assert_same_backbone(model, source)
    assert "replacing the classifier head" in caplog.text
    model = build(f"hf-hub:{hub_id}")
    assert_same_backbone(model, source)


def test_pretrained_without_head_warns(tmp_path, caplog):
    source = source_model(num_classes=4)
    backbone = {key: tensor for key, tensor in source.state_dict().items() if not key.startswith("head.fc.")}
    path = tmp_path / "backbone.safetensors"
    save_file(backbone, path)
    with caplog.at_level(logging.WARNING, logger="zoo_core.models"):
        model = build(str(path))
    assert_same_backbone(model, source)
    assert "has no weights for it: head.fc.weight, head.fc.bias" in caplog.text
