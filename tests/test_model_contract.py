"""One contract for every registered model: forward, backward, reset_classifier, save/load, sizes."""

import pytest
import timm
import torch
import zoo_test_plugins
from safetensors.torch import load_file, save_file

from zoo_core import plugins

CANDIDATE_SIZES = (32, 64, 96, 128, 160, 192, 224)


def registered_models() -> list[str]:
    """List every model of the installed plugins and the test plugin, at collection time."""
    registries = plugins.reload_plugins()
    if "zoo_test_plugins" not in {info.name for info in plugins.loaded_plugins()}:
        registries = plugins.reload_plugins(zoo_test_plugins)
    names = sorted(registries.models.names())
    plugins._state = None
    return names


def smallest_sizes(spec, count: int = 2) -> list[int]:
    """Return the smallest square sizes the model's size rule accepts."""
    accepted = []
    for size in CANDIDATE_SIZES:
        try:
            if spec.check_img_size is not None:
                spec.check_img_size(size, size)
        except ValueError:
            continue
        accepted.append(size)
        if len(accepted) == count:
            break
    return accepted


@pytest.mark.parametrize("name", [n for n in registered_models() if n != "zoo_test_nan"])
def test_model_contract(name, tmp_path):
    spec = plugins.get_model_spec(name)
    sizes = smallest_sizes(spec)
    assert sizes, f"{name} accepts none of {CANDIDATE_SIZES}"
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=4)
    for method in ("forward_features", "forward_head", "reset_classifier"):
        assert callable(getattr(model, method, None)), f"{name} lacks {method}"

    model.train()
    images = torch.randn(2, 3, sizes[0], sizes[0])
    logits = model(images)
    assert logits.shape == (2, 4)
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), f"{name}: some parameters got no gradient"
    assert all(torch.isfinite(g).all() for g in grads)

    model.eval()
    with torch.no_grad():
        reference = model(images)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    fresh = timm.create_model(name, num_classes=4).eval()
    fresh.load_state_dict(load_file(path))
    with torch.no_grad():
        assert torch.equal(fresh(images), reference)

    if len(sizes) > 1:
        with torch.no_grad():
            assert fresh(torch.randn(1, 3, sizes[1], sizes[1])).shape == (1, 4)

    fresh.reset_classifier(7)
    with torch.no_grad():
        assert fresh(images).shape == (2, 7)


@pytest.mark.parametrize("name", [n for n in registered_models() if n != "zoo_test_nan"])
def test_model_rejects_too_small_input(name):
    spec = plugins.get_model_spec(name)
    if spec.check_img_size is None:
        pytest.skip(f"{name} registers no size rule")
    with pytest.raises(ValueError, match="8x8"):
        spec.check_img_size(8, 8)
