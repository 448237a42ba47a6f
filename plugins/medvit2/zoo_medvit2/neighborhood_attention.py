"""2-D dilated neighborhood attention with relative position bias, in pure PyTorch.

Follows the semantics of NATTEN 0.17 (Hassani et al., "Neighborhood Attention
Transformer", CVPR 2023, and "Dilated Neighborhood Attention Transformer",
arXiv 2209.15001): each query at (y, x) attends to a ``kernel_size`` x
``kernel_size`` grid of keys spaced ``dilation`` apart, taken from the query's
own residue class modulo the dilation. At the borders the window shifts inward
instead of being padded, so every query sees exactly ``kernel_size ** 2`` keys.
The bias for a key is ``rpb[head, (key_y - y) / dilation + k - 1, (key_x - x) /
dilation + k - 1]`` from a ``(heads, 2k - 1, 2k - 1)`` table.

NATTEN 0.20 and newer dropped the bias table and have no CPU backward pass, so
this module gathers the neighborhoods with cached index tensors and runs the
attention as batched matmuls; autograd gives the backward pass on any device.
``na2d_reference`` is the per-pixel loop that the tests compare against.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn
from timm.layers import trunc_normal_

__all__ = [
    "NeighborhoodAttention2d",
    "check_neighborhood_size",
    "na2d",
    "na2d_reference",
    "neighborhood_starts",
]


def check_neighborhood_size(height: int, width: int, kernel_size: int, dilation: int) -> None:
    """Raise ``ValueError`` unless a ``height`` x ``width`` map fits a dilated window."""
    span = kernel_size * dilation
    if height < span or width < span:
        raise ValueError(
            f"feature map {height}x{width} is too small for neighborhood attention with kernel_size "
            f"{kernel_size} and dilation {dilation}: height and width must be at least "
            f"kernel_size * dilation = {span}; use a larger input image or a smaller dilation"
        )


def neighborhood_starts(length: int, kernel_size: int, dilation: int) -> list[int]:
    """Return, per position along one axis, the first key position of its window."""
    half = kernel_size // 2
    starts = []
    for index in range(length):
        residue = index % dilation
        # Positions of one residue class form their own undilated axis.
        class_length = (length - residue + dilation - 1) // dilation
        class_index = index // dilation
        class_start = min(max(class_index - half, 0), class_length - kernel_size)
        starts.append(residue + class_start * dilation)
    return starts


@lru_cache(maxsize=64)
def _axis_indices(length: int, kernel_size: int, dilation: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return key positions and bias-table rows, each ``(length, kernel_size)``, for one axis."""
    starts = torch.tensor(neighborhood_starts(length, kernel_size, dilation), dtype=torch.long)
    offsets = torch.arange(kernel_size, dtype=torch.long) * dilation
    keys = starts[:, None] + offsets[None, :]
    queries = torch.arange(length, dtype=torch.long)[:, None]
    bias_rows = torch.div(keys - queries, dilation, rounding_mode="floor") + kernel_size - 1
    return keys, bias_rows


@lru_cache(maxsize=64)
def _flat_indices(
    height: int, width: int, kernel_size: int, dilation: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return flat key indices into ``height * width`` and flat bias indices into ``(2k - 1) ** 2``.

    Both have shape ``(height * width * kernel_size ** 2,)`` in (query, window row, window column) order.
    """
    keys_y, bias_y = _axis_indices(height, kernel_size, dilation)
    keys_x, bias_x = _axis_indices(width, kernel_size, dilation)
    table = 2 * kernel_size - 1

    # (H, 1, k, 1) and (1, W, 1, k) broadcast to (H, W, k, k).
    key_index = keys_y[:, None, :, None] * width + keys_x[None, :, None, :]
    bias_index = bias_y[:, None, :, None] * table + bias_x[None, :, None, :]
    return key_index.reshape(-1).to(device), bias_index.reshape(-1).to(device)


def na2d(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kernel_size: int,
    dilation: int = 1,
    rpb: torch.Tensor | None = None,
    attn_drop: nn.Module | None = None,
) -> torch.Tensor:
    """Compute neighborhood attention on ``(B, heads, H, W, head_dim)`` tensors.

    ``query`` must already be multiplied by the softmax scale. Returns a tensor of
    the same shape as ``query``.
    """
    batch, heads, height, width, head_dim = query.shape
    check_neighborhood_size(height, width, kernel_size, dilation)
    window = kernel_size * kernel_size
    tokens = height * width
    key_index, bias_index = _flat_indices(height, width, kernel_size, dilation, query.device)

    key_windows = key.reshape(batch, heads, tokens, head_dim).index_select(2, key_index)
    key_windows = key_windows.view(batch, heads, tokens, window, head_dim)
    value_windows = value.reshape(batch, heads, tokens, head_dim).index_select(2, key_index)
    value_windows = value_windows.view(batch, heads, tokens, window, head_dim)

    # (B, h, N, 1, d) @ (B, h, N, d, k*k) -> (B, h, N, k*k)
    attn = torch.matmul(query.reshape(batch, heads, tokens, 1, head_dim), key_windows.transpose(-1, -2))
    attn = attn.squeeze(-2)
    if rpb is not None:
        bias = rpb.reshape(heads, -1).index_select(1, bias_index).view(heads, tokens, window)
        attn = attn + bias.to(attn.dtype)
    attn = attn.softmax(dim=-1)
    if attn_drop is not None:
        attn = attn_drop(attn)

    out = torch.matmul(attn.unsqueeze(-2), value_windows).squeeze(-2)
    return out.view(batch, heads, height, width, head_dim)


def na2d_reference(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kernel_size: int,
    dilation: int = 1,
    rpb: torch.Tensor | None = None,
) -> torch.Tensor:
    """Compute neighborhood attention one query pixel at a time (slow; for tests)."""
    _, heads, height, width, _ = query.shape
    check_neighborhood_size(height, width, kernel_size, dilation)
    starts_y = neighborhood_starts(height, kernel_size, dilation)
    starts_x = neighborhood_starts(width, kernel_size, dilation)
    span = (kernel_size - 1) * dilation + 1

    rows = []
    for y in range(height):
        columns = []
        for x in range(width):
            window_y = slice(starts_y[y], starts_y[y] + span, dilation)
            window_x = slice(starts_x[x], starts_x[x] + span, dilation)
            keys = key[:, :, window_y, window_x].flatten(2, 3)
            values = value[:, :, window_y, window_x].flatten(2, 3)
            logits = torch.einsum("bhd,bhnd->bhn", query[:, :, y, x], keys)
            if rpb is not None:
                first_y = (starts_y[y] - y) // dilation + kernel_size - 1
                first_x = (starts_x[x] - x) // dilation + kernel_size - 1
                bias = rpb[:, first_y:first_y + kernel_size, first_x:first_x + kernel_size]
                logits = logits + bias.reshape(1, heads, -1)
            weights = logits.softmax(dim=-1)
            columns.append(torch.einsum("bhn,bhnd->bhd", weights, values))
        rows.append(torch.stack(columns, dim=2))
    return torch.stack(rows, dim=2)


class NeighborhoodAttention2d(nn.Module):
    """Multi-head 2-D neighborhood attention on channels-last ``(B, H, W, C)`` input.

    Parameter names and shapes (``qkv``, ``rpb``, ``proj``) match NATTEN 0.17's
    ``NeighborhoodAttention2D`` so its state dicts load unchanged.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        kernel_size: int = 7,
        dilation: int = 1,
        rel_pos_bias: bool = True,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}; choose a divisor of dim")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd positive integer, got {kernel_size}")
        if dilation < 1:
            raise ValueError(f"dilation must be a positive integer, got {dilation}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        self.kernel_size = kernel_size
        self.dilation = dilation

        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        if rel_pos_bias:
            self.rpb = nn.Parameter(torch.zeros(num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1))
            trunc_normal_(self.rpb, std=0.02)
        else:
            self.register_parameter("rpb", None)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"NeighborhoodAttention2d expects (B, H, W, C) input, got shape {tuple(x.shape)}")
        batch, height, width, channels = x.shape

        qkv = self.qkv(x).reshape(batch, height, width, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(3, 0, 4, 1, 2, 5).unbind(0)
        x = na2d(
            query * self.scale,
            key,
            value,
            self.kernel_size,
            self.dilation,
            rpb=self.rpb,
            attn_drop=self.attn_drop if self.training else None,
        )

        x = x.permute(0, 2, 3, 1, 4).reshape(batch, height, width, channels)
        return self.proj_drop(self.proj(x))

    def extra_repr(self) -> str:
        return (
            f"num_heads={self.num_heads}, head_dim={self.head_dim}, kernel_size={self.kernel_size}, "
            f"dilation={self.dilation}, rel_pos_bias={self.rpb is not None}"
        )
