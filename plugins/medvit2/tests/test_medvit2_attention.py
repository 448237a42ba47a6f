"""Neighborhood attention against the per-pixel reference, forward and backward."""

import pytest
import torch

from zoo_medvit2.neighborhood_attention import (
    NeighborhoodAttention2d,
    na2d,
    na2d_reference,
    neighborhood_starts,
)

CASES = [
    # (height, width, kernel_size, dilation)
    (7, 7, 7, 1),
    (8, 11, 3, 1),
    (11, 9, 5, 1),
    (11, 7, 3, 2),
    (14, 14, 7, 2),
    (9, 10, 3, 3),
]


def _inputs(height, width, kernel_size, heads=2, head_dim=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shape = (1, heads, height, width, head_dim)
    tensors = [torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(3)]
    rpb = torch.randn(heads, 2 * kernel_size - 1, 2 * kernel_size - 1, generator=generator, dtype=torch.float64)
    return [t.requires_grad_() for t in tensors + [rpb]]


@pytest.mark.parametrize("height, width, kernel_size, dilation", CASES)
def test_forward_matches_reference(height, width, kernel_size, dilation):
    query, key, value, rpb = _inputs(height, width, kernel_size)
    fast = na2d(query, key, value, kernel_size, dilation, rpb=rpb)
    slow = na2d_reference(query, key, value, kernel_size, dilation, rpb=rpb)
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-12)


@pytest.mark.parametrize("height, width, kernel_size, dilation", CASES)
def test_gradients_match_reference(height, width, kernel_size, dilation):
    query, key, value, rpb = _inputs(height, width, kernel_size, seed=1)
    weights = torch.randn(1, 2, height, width, 4, dtype=torch.float64)

    fast = (na2d(query, key, value, kernel_size, dilation, rpb=rpb) * weights).sum()
    fast_grads = torch.autograd.grad(fast, [query, key, value, rpb])
    slow = (na2d_reference(query, key, value, kernel_size, dilation, rpb=rpb) * weights).sum()
    slow_grads = torch.autograd.grad(slow, [query, key, value, rpb])

    for name, got, expected in zip(["query", "key", "value", "rpb"], fast_grads, slow_grads):
        assert got.abs().sum() > 0, name
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-10, msg=name)


@pytest.mark.parametrize("tile", [1, 3, 5, 16])
@pytest.mark.parametrize("height, width, kernel_size, dilation", [(8, 11, 3, 1), (11, 7, 3, 2), (14, 14, 7, 2)])
def test_tile_size_does_not_change_result(height, width, kernel_size, dilation, tile):
    query, key, value, rpb = _inputs(height, width, kernel_size, seed=2)
    tiled = na2d(query, key, value, kernel_size, dilation, rpb=rpb, tile=tile)
    slow = na2d_reference(query, key, value, kernel_size, dilation, rpb=rpb)
    torch.testing.assert_close(tiled, slow, rtol=0, atol=1e-12)


def test_without_bias_matches_reference():
    query, key, value, _ = _inputs(8, 9, 3)
    torch.testing.assert_close(
        na2d(query, key, value, 3, 2), na2d_reference(query, key, value, 3, 2), rtol=0, atol=1e-12,
    )


@pytest.mark.parametrize("length, kernel_size, dilation", [(7, 7, 1), (10, 3, 1), (13, 5, 2), (10, 3, 3), (29, 7, 4)])
def test_windows_stay_inside_and_keep_residue(length, kernel_size, dilation):
    half = kernel_size // 2
    for index, start in enumerate(neighborhood_starts(length, kernel_size, dilation)):
        keys = [start + i * dilation for i in range(kernel_size)]
        assert keys[0] >= 0
        assert keys[-1] < length
        assert index in keys
        assert all(key % dilation == index % dilation for key in keys)
        # Away from the borders the window is centred on the query.
        if index - half * dilation >= 0 and index + half * dilation < length:
            assert keys[half] == index


def test_border_windows_shift_inward():
    assert neighborhood_starts(10, 3, 1) == [0, 0, 1, 2, 3, 4, 5, 6, 7, 7]
    assert neighborhood_starts(10, 3, 3) == [0, 1, 2, 0, 1, 2, 3, 1, 2, 3]
    assert neighborhood_starts(14, 7, 2) == [0, 1] * 7
    assert neighborhood_starts(15, 3, 2) == [0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 9, 10]


def test_too_small_map_names_size_and_rule():
    query, key, value, rpb = _inputs(6, 9, 7)
    with pytest.raises(ValueError, match=r"6x9 .* kernel_size \* dilation = 7"):
        na2d(query, key, value, 7, 1, rpb=rpb)


def test_module_trains_on_cpu():
    torch.manual_seed(0)
    module = NeighborhoodAttention2d(16, num_heads=2, kernel_size=3, dilation=2, attn_drop=0.1)
    x = torch.randn(2, 8, 7, 16, requires_grad=True)
    module(x).square().mean().backward()

    assert module.rpb.shape == (2, 5, 5)
    assert module.rpb.grad.abs().sum() > 0
    assert module.qkv.weight.grad.abs().sum() > 0
    assert torch.isfinite(x.grad).all()


def test_module_matches_reference_pipeline():
    torch.manual_seed(0)
    module = NeighborhoodAttention2d(12, num_heads=3, kernel_size=5, dilation=1).double().eval()
    x = torch.randn(1, 6, 8, 12, dtype=torch.float64)

    qkv = module.qkv(x).reshape(1, 6, 8, 3, 3, 4).permute(3, 0, 4, 1, 2, 5)
    attended = na2d_reference(qkv[0] * module.scale, qkv[1], qkv[2], 5, 1, rpb=module.rpb)
    expected = module.proj(attended.permute(0, 2, 3, 1, 4).reshape(1, 6, 8, 12))

    torch.testing.assert_close(module(x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kwargs, message", [(dict(kernel_size=4), "odd"), (dict(dilation=0), "dilation")])
def test_module_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NeighborhoodAttention2d(8, num_heads=2, **kwargs)
