"""MedViTV2 model: registration, size rules, training step, head replacement, save/load."""

from importlib.metadata import entry_points

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

import zoo_medvit2
from zoo_medvit2 import plugin
from zoo_medvit2.medvit2 import DILATED_224, MedViT2

VARIANTS = ["medvit2_tiny", "medvit2_small", "medvit2_base", "medvit2_large"]
TINY = dict(
    stem_chs=(16, 8, 16),
    depths=(1, 2, 3, 1),
    dims=(32, 64, 64, 96),
    head_dim=16,
    mix_block_ratio=0.5,
)


def _tiny(**kwargs):
    return timm.create_model("medvit2_tiny", num_classes=4, **dict(TINY, **kwargs))


def test_timm_lists_four_variants():
    assert sorted(timm.list_models("medvit2_*")) == sorted(VARIANTS)


def test_create_model_after_import():
    model = timm.create_model("medvit2_small", num_classes=4)
    assert isinstance(model, zoo_medvit2.MedViT2)
    assert model.fc.out_features == 4
    assert model.pretrained_cfg["classifier"] == "fc"


@pytest.mark.parametrize(
    "name, expected",
    [("medvit2_tiny", 10_735_453), ("medvit2_small", 27_336_997)],
)
def test_parameter_counts_at_1000_classes(name, expected):
    model = timm.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_entry_point_declared():
    names = {entry.name: entry.value for entry in entry_points(group="brain_zoo")}
    assert names.get("medvit2") == "zoo_medvit2.plugin"


def test_plugin_registers_specs():
    specs = []
    plugin.register_models(specs.append)

    assert [spec.name for spec in specs] == VARIANTS
    for spec in specs:
        assert spec.family == "MedViTV2"
        assert spec.default_img_size == 224
        assert "2502.13693" in spec.paper
        assert spec.pretrained.startswith("https://")
        spec.check_img_size(224, 224)
        spec.check_img_size(97, 120)
        with pytest.raises(ValueError, match=r"input size 96x96 .*stage 3 .*6x6 .*at least 7x7.*97x97"):
            spec.check_img_size(96, 96)
    assert specs[1].recipes == ("medvit2_small_224",)


def test_model_rejects_small_input_with_rule():
    model = _tiny().eval()
    with pytest.raises(ValueError, match=r"input size 96x128 is not supported.*97x97"):
        model(torch.randn(1, 3, 96, 128))


def test_dilated_rule_scales_with_dilation():
    model = _tiny(dilations=(2, 1, 1, 1)).eval()
    with pytest.raises(ValueError, match=r"stage 1.*dilation 2"):
        model(torch.randn(1, 3, 52, 112))
    assert model(torch.randn(1, 3, 112, 112)).shape == (1, 4)


def test_dilated_224_preset_fits_224():
    model = _tiny(dilations=DILATED_224).eval()
    model.check_input_size(224, 224)
    with pytest.raises(ValueError, match="221x221"):
        model.check_input_size(220, 224)


@pytest.mark.parametrize("layout", ["official", "corrected"])
def test_training_step_non_square(layout):
    torch.manual_seed(0)
    model = _tiny(layout=layout, drop_path_rate=0.1, drop_rate=0.1)
    model.train()
    images = torch.randn(2, 3, 112, 128)
    loss = torch.nn.functional.cross_entropy(model(images), torch.tensor([0, 3]))
    loss.backward()

    assert torch.isfinite(loss)
    rpb = model.stages[0].blocks[0].attn.rpb
    kan_weight = model.stages[1].blocks[1].kan.layers[0].fc.weight
    assert rpb.grad is not None and rpb.grad.abs().sum() > 0
    assert kan_weight.grad is not None and kan_weight.grad.abs().sum() > 0
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name


def test_grad_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = _tiny().eval()
    images = torch.randn(1, 3, 112, 112)
    model(images).sum().backward()
    expected = model.stem[0].conv.weight.grad.clone()

    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(images).sum().backward()
    torch.testing.assert_close(model.stem[0].conv.weight.grad, expected)


def test_unknown_layout_is_rejected():
    with pytest.raises(ValueError, match="unknown layout 'nhwc'"):
        _tiny(layout="nhwc")


def test_bad_global_width_is_rejected():
    with pytest.raises(ValueError, match="global block width 64"):
        MedViT2(**dict(TINY, dims=(32, 64, 64, 96), mix_block_ratio=0.75))


def test_reset_classifier_and_pre_logits():
    model = _tiny().eval()
    images = torch.randn(1, 3, 112, 112)
    features = model.forward_head(model.forward_features(images), pre_logits=True)

    model.reset_classifier(7)
    assert model(images).shape == (1, 7)
    assert model.get_classifier().in_features == features.shape[1] == 96
    model.reset_classifier(0)
    assert model(images).shape == (1, 96)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = _tiny()
    model.train()
    model(torch.randn(2, 3, 112, 112))  # moves BatchNorm running statistics away from their defaults
    model.eval()
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), path)

    restored = _tiny().eval()
    restored.load_state_dict(load_file(path), strict=True)
    images = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(restored(images), model(images), rtol=0, atol=0)


def test_features_only_returns_four_stages():
    model = timm.create_model("medvit2_tiny", features_only=True, **TINY).eval()
    maps = model(torch.randn(1, 3, 128, 128))
    assert [tuple(m.shape[1:]) for m in maps] == [(32, 32, 32), (64, 16, 16), (64, 8, 8), (96, 4, 4)]
