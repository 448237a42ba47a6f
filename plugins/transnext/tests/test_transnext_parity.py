"""Parity with the official TransNeXt native implementation, from fixtures made by running it once.

See fixtures/NOTE.md for how transnext_parity.safetensors was produced.
"""

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from zoo_transnext.transnext import TransNeXt

FIXTURE = Path(__file__).parent / "fixtures" / "transnext_parity.safetensors"
# Must match TINY_CONFIG in fixtures/make_transnext_fixtures.py.
FIXTURE_CONFIG = dict(embed_dims=(16, 32, 64, 128), depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8), num_classes=10)


@pytest.fixture(scope="module")
def fixture_tensors():
    return load_file(str(FIXTURE))


@pytest.fixture(scope="module")
def model_from_official_state_dict(fixture_tensors):
    prefix = "state_dict."
    state_dict = {k[len(prefix):]: v for k, v in fixture_tensors.items() if k.startswith(prefix)}
    model = TransNeXt(pretrain_img_size=224, **FIXTURE_CONFIG).eval()
    model.load_state_dict(state_dict, strict=True)
    return model


def test_fixture_sizes_recorded():
    with safe_open(str(FIXTURE), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata == {"sizes": "224,256", "pretrain_size": "224"}


@pytest.mark.parametrize("size", [224, 256])
def test_logits_match_official(fixture_tensors, model_from_official_state_dict, size):
    image = fixture_tensors[f"input_{size}"]
    expected = fixture_tensors[f"logits_{size}"]
    assert image.dtype == torch.float32
    assert image.shape == (1, 3, size, size)

    with torch.no_grad():
        logits = model_from_official_state_dict(image)
    assert logits.shape == expected.shape
    max_diff = (logits - expected).abs().max().item()
    assert max_diff < 1e-5, f"max |logit difference| at {size}: {max_diff:.2e}"
    # Guard against a degenerate fixture where any model would match.
    assert expected.std() > 0.1


def test_one_model_serves_both_fixture_sizes(fixture_tensors, model_from_official_state_dict):
    # The official code needed one model per size; ours returns both in either order.
    with torch.no_grad():
        late_256 = model_from_official_state_dict(fixture_tensors["input_256"])
        late_224 = model_from_official_state_dict(fixture_tensors["input_224"])
    assert (late_256 - fixture_tensors["logits_256"]).abs().max() < 1e-5
    assert (late_224 - fixture_tensors["logits_224"]).abs().max() < 1e-5


def test_224_state_dict_at_other_sizes(model_from_official_state_dict):
    # The fixture has official logits only at 224 and 256, so this checks shape and finiteness.
    for size in [(384, 384), (256, 320)]:
        with torch.no_grad():
            logits = model_from_official_state_dict(torch.randn(1, 3, *size))
        assert logits.shape == (1, 10)
        assert torch.isfinite(logits).all()
