"""Tests for the TransNeXt model: sizes, heads, gradients, checkpoints and parameter counts."""

import logging

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

import zoo_transnext  # noqa: F401  (registers the timm models)
from zoo_transnext.transnext import (
    TransNeXt,
    _WindowDot,
    _WindowSum,
    check_img_size,
    checkpoint_filter_fn,
)

TINY = dict(embed_dims=(16, 32, 64, 128), depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8))


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return TransNeXt(num_classes=5, **TINY).eval()


@pytest.mark.parametrize("name, published_millions", [
    ("transnext_micro", 12.8),
    ("transnext_tiny", 28.2),
    ("transnext_small", 49.7),
    ("transnext_base", 89.7),
])
def test_param_count_matches_paper(name, published_millions):
    with torch.device("meta"):
        model = timm.create_model(name)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(millions - published_millions) / published_millions < 0.005, f"{name}: {millions:.3f}M"


@pytest.mark.parametrize("size", [(224, 224), (256, 256), (384, 384), (256, 320), (320, 224), (32, 32)])
def test_forward_at_any_multiple_of_32(tiny_model, size):
    with torch.no_grad():
        logits = tiny_model(torch.randn(1, 3, *size))
    assert logits.shape == (1, 5)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("size", [(138, 138), (224, 200), (16, 16), (0, 224)])
def test_unsupported_size_raises_with_rule(tiny_model, size):
    with pytest.raises(ValueError, match=rf"{size[0]}x{size[1]}.*multiples of 32"):
        check_img_size(*size)
    if min(size) > 0:
        with pytest.raises(ValueError, match=rf"{size[0]}x{size[1]}.*multiples of 32"):
            tiny_model(torch.randn(1, 3, *size))


def test_size_cache_keeps_results_stable(tiny_model):
    image_224 = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        before = tiny_model(image_224)
        tiny_model(torch.randn(1, 3, 384, 384))
        tiny_model(torch.randn(1, 3, 256, 320))
        after = tiny_model(image_224)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_default_constructor_runs_at_224():
    # The official class defaults to patch size 16 with coordinates for 224 input and fails there.
    model = TransNeXt(depths=(1, 1, 1, 1)).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_create_model_with_num_classes():
    model = timm.create_model("transnext_micro", num_classes=4, drop_rate=0.35, drop_path_rate=0.1, **TINY)
    assert model.num_classes == 4
    assert model.head.out_features == 4
    assert model.pretrained_cfg["hf_hub_id"] == "DaiShiResearch/transnext-micro-224-1k"


def test_reset_classifier_replaces_head(tiny_model):
    model = TransNeXt(num_classes=5, **TINY).eval()
    image = torch.randn(2, 3, 64, 64)

    model.reset_classifier(3)
    with torch.no_grad():
        assert model(image).shape == (2, 3)

    model.reset_classifier(0)
    with torch.no_grad():
        features = model(image)
        pooled = model.forward_head(model.forward_features(image), pre_logits=True)
    assert features.shape == (2, 128)
    torch.testing.assert_close(features, pooled)

    with pytest.raises(ValueError, match="global_pool 'max'"):
        model.reset_classifier(3, global_pool="max")


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    model = TransNeXt(num_classes=4, drop_path_rate=0.1, proj_drop_rate=0.1, attn_drop_rate=0.1, **TINY).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 64, 96)), torch.tensor([0, 3]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} has no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def _window_reference(q, k, v, weights, window_size):
    # Plain autograd version of the two window operations, built on nn.functional.unfold.
    B, heads, dim, H, W = q.shape
    pad = window_size // 2
    k_windows = torch.nn.functional.unfold(k.reshape(B, heads * dim, H, W), window_size, padding=pad)
    k_windows = k_windows.reshape(B, heads, dim, window_size ** 2, H, W)
    dot = (q.unsqueeze(3) * k_windows).sum(2).permute(2, 0, 1, 3, 4)
    v_windows = torch.nn.functional.unfold(v.reshape(B, heads * dim, H, W), window_size, padding=pad)
    v_windows = v_windows.reshape(B, heads, dim, window_size ** 2, H, W)
    weighted = (weights.permute(1, 2, 0, 3, 4).unsqueeze(2) * v_windows).sum(3)
    return dot, weighted


def test_window_ops_match_unfold_reference():
    torch.manual_seed(0)
    shape = (2, 2, 3, 4, 5)
    q, k, v = (torch.randn(shape, dtype=torch.float64, requires_grad=True) for _ in range(3))
    weights = torch.randn(9, 2, 2, 4, 5, dtype=torch.float64, requires_grad=True)

    dot_ref, sum_ref = _window_reference(q, k, v, weights, 3)
    torch.testing.assert_close(_WindowDot.apply(q, k, 3), dot_ref)
    torch.testing.assert_close(_WindowSum.apply(weights, v, 3), sum_ref)

    assert torch.autograd.gradcheck(lambda a, b: _WindowDot.apply(a, b, 3), (q, k))
    assert torch.autograd.gradcheck(lambda a, b: _WindowSum.apply(a, b, 3), (weights, v))


def test_safetensors_round_trip(tiny_model, tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(tiny_model.state_dict(), str(path))

    restored = TransNeXt(num_classes=5, **TINY).eval()
    restored.load_state_dict(load_file(str(path)))
    image = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        torch.testing.assert_close(restored(image), tiny_model(image), rtol=0, atol=0)


def test_checkpoint_filter_unwraps_and_drops_head(tiny_model, caplog):
    wrapped = {"model": tiny_model.state_dict(), "epoch": 3}
    target = TransNeXt(num_classes=4, **TINY)
    with caplog.at_level(logging.WARNING, logger="zoo_transnext.transnext"):
        filtered = checkpoint_filter_fn(wrapped, target)
    assert "head.weight" not in filtered
    assert "head.bias" not in filtered
    assert "5-class head" in caplog.text
    assert "num_classes=4" in caplog.text
    assert set(filtered) == set(tiny_model.state_dict()) - {"head.weight", "head.bias"}

    caplog.clear()
    kept = checkpoint_filter_fn(tiny_model.state_dict(), TransNeXt(num_classes=5, **TINY))
    assert "head.weight" in kept
    assert caplog.text == ""


def test_pretrained_file_in_official_layout(tiny_model, tmp_path, caplog):
    # The official .pth files hold {"model": state_dict}; timm applies checkpoint_filter_fn on load.
    path = tmp_path / "transnext_official_layout.pth"
    torch.save({"model": tiny_model.state_dict()}, path)

    same_head = timm.create_model(
        "transnext_micro", pretrained=True, num_classes=5,
        pretrained_cfg_overlay=dict(file=str(path), num_classes=5), **TINY).eval()
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(same_head(image), tiny_model(image), rtol=0, atol=0)

    with caplog.at_level(logging.WARNING, logger="zoo_transnext.transnext"):
        new_head = timm.create_model(
            "transnext_micro", pretrained=True, num_classes=4,
            pretrained_cfg_overlay=dict(file=str(path), num_classes=5), **TINY)
    assert "dropping the checkpoint's 5-class head" in caplog.text
    assert new_head.head.out_features == 4
    torch.testing.assert_close(new_head.block3[0].attn.kv.weight, tiny_model.block3[0].attn.kv.weight)
