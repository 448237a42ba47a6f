"""KAN layer of MedViTV2 against its defining formula."""

import math

import pytest
import torch

from zoo_medvit2.kan import KANFeedForward, KANLayer, reflectional_switch_basis


def test_basis_matches_formula_elementwise():
    grid = torch.linspace(-2.0, 2.0, 8, dtype=torch.float64)
    x = torch.tensor([-3.0, -0.7, 0.0, 0.33, 2.5], dtype=torch.float64)
    basis = reflectional_switch_basis(x, grid, 0.33)

    assert basis.shape == (5, 8)
    for i, value in enumerate(x.tolist()):
        for g, point in enumerate(grid.tolist()):
            expected = 1.0 - math.tanh((value - point) / 0.33) ** 2
            assert basis[i, g].item() == pytest.approx(expected, abs=1e-12)


def test_layer_matches_formula_with_feature_major_weights():
    torch.manual_seed(0)
    layer = KANLayer(3, 2, grid_min=-1.0, grid_max=1.5, num_grids=5, denominator=0.5).double()
    with torch.no_grad():
        layer.norm.weight.uniform_(0.5, 1.5)
        layer.norm.bias.uniform_(-0.2, 0.2)
    x = torch.randn(4, 3, dtype=torch.float64)

    normed = torch.nn.functional.layer_norm(x, (3,), layer.norm.weight, layer.norm.bias, layer.norm.eps)
    grid = torch.linspace(-1.0, 1.5, 5, dtype=torch.float64)
    expected = torch.zeros(4, 2, dtype=torch.float64)
    for n in range(4):
        for out in range(2):
            total = 0.0
            for feature in range(3):
                for g in range(5):
                    basis = 1.0 - math.tanh((normed[n, feature].item() - grid[g].item()) / 0.5) ** 2
                    total += layer.fc.weight[out, feature * 5 + g].item() * basis
            expected[n, out] = total

    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-10)


def test_grid_is_fixed_buffer():
    layer = KANLayer(4, 4, grid_min=-2.0, grid_max=2.0, num_grids=8)
    assert "grid" in layer.state_dict()
    assert all(name != "grid" for name, _ in layer.named_parameters())
    torch.testing.assert_close(layer.grid, torch.linspace(-2.0, 2.0, 8))
    assert layer.fc.weight.shape == (4, 32)
    assert layer.fc.bias is None


def test_feed_forward_shapes_and_backward():
    block = KANFeedForward(6, 12)
    x = torch.randn(10, 6, requires_grad=True)
    out = block(x)
    out.square().sum().backward()

    assert out.shape == (10, 6)
    assert block.layers[0].fc.weight.shape == (12, 48)
    assert block.layers[1].fc.weight.shape == (6, 96)
    assert torch.isfinite(x.grad).all()
    assert block.layers[0].fc.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_grids=0), "num_grids"),
        (dict(grid_min=1.0, grid_max=1.0), "grid_max"),
        (dict(denominator=0.0), "denominator"),
    ],
)
def test_layer_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KANLayer(4, 4, **kwargs)
