"""Tests for the TransNeXt plugin's registration with brain-zoo and timm."""

from importlib import metadata

import pytest
import timm

import zoo_transnext
from zoo_transnext import plugin

NAMES = ["transnext_micro", "transnext_tiny", "transnext_small", "transnext_base"]


def test_entry_point_declared():
    entry_points = metadata.entry_points(group="brain_zoo")
    assert "zoo_transnext.plugin" in [ep.value for ep in entry_points if ep.name == "transnext"]


def test_register_models_specs():
    specs = []
    plugin.register_models(register=specs.append)
    assert [spec.name for spec in specs] == NAMES
    for spec in specs:
        assert spec.family == "TransNeXt"
        assert spec.default_img_size == 224
        assert "2311.17132" in spec.paper
        assert spec.pretrained.startswith("DaiShiResearch/transnext-")
        assert "multiples of 32" in spec.size_rule
        spec.check_img_size(224, 320)
        with pytest.raises(ValueError, match="138x138"):
            spec.check_img_size(138, 138)
    assert specs[1].recipes == ("transnext_tiny_224",)


def test_timm_registry_after_import():
    assert zoo_transnext.__version__
    for name in NAMES:
        assert timm.is_model(name)
        cfg = timm.models.get_pretrained_cfg(name)
        assert cfg.hf_hub_id == f"DaiShiResearch/{name.replace('_', '-')}-224-1k"
        assert cfg.hf_hub_filename == f"{name}_224_1k.pth"


def test_zoo_registry_lists_models():
    from zoo_core import plugins

    models = plugins.get_registries().models
    for name in NAMES:
        assert name in models
        assert plugins.get_model_spec(name).family == "TransNeXt"
