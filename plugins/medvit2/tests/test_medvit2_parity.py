"""Logits of our MedViTV2 against logits that the official code produced (see fixtures/NOTE.md)."""

import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from zoo_medvit2.medvit2 import MedViT2, checkpoint_filter_fn

FIXTURE = Path(__file__).parent / "fixtures" / "medvit2_tiny_official.safetensors"


@pytest.fixture(scope="module")
def fixture():
    tensors = load_file(FIXTURE)
    with safe_open(FIXTURE, "pt") as handle:
        config = json.loads(handle.metadata()["config"])
    state_dict = {key[len("state_dict."):]: value for key, value in tensors.items() if key.startswith("state_dict.")}
    return config, state_dict, tensors["input"], tensors["logits"]


def _load(config, state_dict, **kwargs):
    model = MedViT2(**config, **kwargs)
    model.load_state_dict(checkpoint_filter_fn(state_dict, model), strict=True)
    return model.eval()


def test_official_layout_matches_official_logits(fixture):
    config, state_dict, images, logits = fixture
    model = _load(config, state_dict)
    with torch.no_grad():
        ours = model(images)
    torch.testing.assert_close(ours, logits, rtol=0, atol=1e-4)


def test_filter_drops_only_unused_global_conv(fixture):
    config, state_dict, _, _ = fixture
    model = MedViT2(**config)
    converted = checkpoint_filter_fn(state_dict, model)

    dropped = len(state_dict) - len(converted)
    global_blocks = sum(kinds.count("global") for kinds in model.block_kinds)
    unused_per_block = sum(1 for key in state_dict if key.startswith("features.2.conv."))
    assert global_blocks == 3
    assert unused_per_block > 0
    assert dropped == global_blocks * unused_per_block
    assert set(converted) == set(model.state_dict())


def test_corrected_layout_changes_logits(fixture):
    config, state_dict, images, logits = fixture
    model = _load(config, state_dict, layout="corrected")
    with torch.no_grad():
        ours = model(images)
    assert (ours - logits).abs().max() > 1e-2


def test_timm_pretrained_file_overlay(fixture, tmp_path):
    config, state_dict, images, logits = fixture
    path = tmp_path / "official.safetensors"
    save_file({key: value.contiguous() for key, value in state_dict.items()}, path)

    kwargs = {key: value for key, value in config.items() if key != "num_classes"}
    model = timm.create_model(
        "medvit2_tiny",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(path), num_classes=config["num_classes"]),
        num_classes=config["num_classes"],
        drop_path_rate=0.0,
        **kwargs,
    ).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images), logits, rtol=0, atol=1e-4)


def test_timm_pretrained_new_head_keeps_features(fixture, tmp_path):
    config, state_dict, images, _ = fixture
    path = tmp_path / "official.safetensors"
    save_file({key: value.contiguous() for key, value in state_dict.items()}, path)

    kwargs = {key: value for key, value in config.items() if key != "num_classes"}
    model = timm.create_model(
        "medvit2_tiny", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), num_classes=4, **kwargs,
    ).eval()
    reference = _load(config, state_dict)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(images), reference.forward_features(images))
    assert model.fc.out_features == 4
