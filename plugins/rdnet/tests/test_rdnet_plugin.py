"""The RDNet plugin: registration, input sizes and pretrained weights without network."""

import pytest
import timm
import torch

from zoo_core import plugins
from zoo_core.models import ModelConfigError, create_model
from zoo_core.recipe import ModelConfig


def test_plugin_registers_four_sizes_from_timm():
    registries = plugins.reload_plugins()
    for name in ("rdnet_tiny", "rdnet_small", "rdnet_base", "rdnet_large"):
        spec = registries.models.get(name)
        assert registries.models.owners[name] == "rdnet"
        assert spec.family == "RDNet"
        assert spec.pretrained == f"naver-ai/{name}.nv_in1k"
        assert name in timm.list_models("rdnet_*")


@pytest.mark.parametrize("size", [224, 256, 384])
def test_rdnet_tiny_runs_at_recipe_sizes(size):
    model = timm.create_model("rdnet_tiny", num_classes=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 4)


def test_too_small_size_rejected_with_rule():
    with pytest.raises(ModelConfigError, match="16x16.*at least 32 pixels"):
        create_model(ModelConfig(name="rdnet_tiny"), num_classes=4, img_size=16)


def test_default_pretrained_offline_says_how(monkeypatch):
    # The test session runs with HF_HUB_OFFLINE=1 and an empty Hugging Face cache.
    with pytest.raises(ModelConfigError) as error:
        create_model(ModelConfig(name="rdnet_tiny", pretrained="default"), num_classes=4)
    message = str(error.value)
    assert "naver-ai/rdnet_tiny.nv_in1k" in message
    assert "model.pretrained=null" in message
