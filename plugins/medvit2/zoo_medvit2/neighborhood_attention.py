"""2-D dilated neighborhood attention with relative position bias, in pure PyTorch.

Follows the semantics of NATTEN 0.17 (Hassani et al., "Neighborhood Attention
Transformer", CVPR 2023, and "Dilated Neighborhood Attention Transformer",
arXiv 2209.15001). Each query at (y, x) attends to a ``kernel_size`` x
``kernel_size`` grid of keys spaced ``dilation`` apart, taken from the query's
own residue class modulo the dilation. At the borders the window shifts inward
instead of being padded, so every query sees exactly ``kernel_size ** 2`` keys.
The bias for a key is ``rpb[head, (key_y - y) / dilation + k - 1, (key_x - x) /
dilation + k - 1]`` from a ``(heads, 2k - 1, 2k - 1)`` table.

NATTEN 0.20 and newer dropped the bias table and have no CPU backward pass, so
this module computes the attention in plain PyTorch: queries are grouped in
tiles, each tile gathers the union of its windows with cached index tensors,
and one masked batched matmul per tile does the work. Autograd gives the
backward pass on any device.
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


def _axis_tiles(length: int, kernel_size: int, dilation: int, tile: int) -> list[tuple[list[int], list[int]]]:
    """Split one axis into query tiles, each with the union of its key windows.

    Positions of one residue class modulo ``dilation`` form their own undilated
    axis, so tiles never mix classes. Returns (query positions, key positions) per tile.
    """
    starts = neighborhood_starts(length, kernel_size, dilation)
    tiles = []
    for residue in range(dilation):
        positions = list(range(residue, length, dilation))
        for first in range(0, len(positions), tile):
            queries = positions[first:first + tile]
            # Window starts grow with the query position, so the union is one contiguous run.
            keys = list(range(starts[queries[0]], starts[queries[-1]] + kernel_size * dilation, dilation))
            tiles.append((queries, keys))
    return tiles


@lru_cache(maxsize=64)
def _tile_indices(
    height: int, width: int, kernel_size: int, dilation: int, tile: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
    """Precompute the gathers of tiled neighborhood attention for one map size.

    Returns flat query indices ``(G * Q,)``, flat key indices ``(G * K,)``, flat
    bias-table indices ``(G * Q * K,)`` where ``(2k - 1) ** 2`` marks a key
    outside the query's window, the inverse map from each pixel to its query
    slot ``(H * W,)``, and the per-tile sizes ``Q`` and ``K``.
    """
    table = 2 * kernel_size - 1
    masked = table * table
    rows = _axis_tiles(height, kernel_size, dilation, tile)
    columns = _axis_tiles(width, kernel_size, dilation, tile)
    max_queries = max(len(q) for q, _ in rows) * max(len(q) for q, _ in columns)
    max_keys = max(len(k) for _, k in rows) * max(len(k) for _, k in columns)
    starts_y = torch.tensor(neighborhood_starts(height, kernel_size, dilation))
    starts_x = torch.tensor(neighborhood_starts(width, kernel_size, dilation))

    query_index, key_index, bias_index = [], [], []
    inverse = torch.empty(height * width, dtype=torch.long)
    for query_rows, key_rows in rows:
        for query_cols, key_cols in columns:
            qy = torch.tensor(query_rows).repeat_interleave(len(query_cols))
            qx = torch.tensor(query_cols).repeat(len(query_rows))
            ky = torch.tensor(key_rows).repeat_interleave(len(key_cols))
            kx = torch.tensor(key_cols).repeat(len(key_rows))
            inverse[qy * width + qx] = len(query_index) * max_queries + torch.arange(len(qy))

            # Pad queries by repeating the first one (its output is never read back)
            # and keys with pixel 0 marked as outside every window.
            pad_queries = max_queries - len(qy)
            qy = torch.cat([qy, qy[:1].expand(pad_queries)])
            qx = torch.cat([qx, qx[:1].expand(pad_queries)])
            key_valid = torch.arange(max_keys) < len(ky)
            ky = torch.cat([ky, ky.new_zeros(max_keys - len(ky))])
            kx = torch.cat([kx, kx.new_zeros(max_keys - len(kx))])

            dy = ky[None, :] - starts_y[qy][:, None]
            dx = kx[None, :] - starts_x[qx][:, None]
            inside = (dy >= 0) & (dy < kernel_size * dilation) & (dx >= 0) & (dx < kernel_size * dilation)
            inside &= key_valid[None, :]
            bias_y = torch.div(ky[None, :] - qy[:, None], dilation, rounding_mode="floor") + kernel_size - 1
            bias_x = torch.div(kx[None, :] - qx[:, None], dilation, rounding_mode="floor") + kernel_size - 1
            bias = torch.where(inside, bias_y * table + bias_x, torch.full_like(bias_y, masked))

            query_index.append(qy * width + qx)
            key_index.append(ky * width + kx)
            bias_index.append(bias)

    return (
        torch.stack(query_index).reshape(-1).to(device),
        torch.stack(key_index).reshape(-1).to(device),
        torch.stack(bias_index).reshape(-1).to(device),
        inverse.to(device),
        max_queries,
        max_keys,
    )


def na2d(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kernel_size: int,
    dilation: int = 1,
    rpb: torch.Tensor | None = None,
    attn_drop: nn.Module | None = None,
    tile: int = 8,
) -> torch.Tensor:
    """Compute neighborhood attention on ``(B, heads, H, W, head_dim)`` tensors.

    ``query`` must already be multiplied by the softmax scale. Queries are
    processed in ``tile`` x ``tile`` tiles that share the union of their key
    windows, so each tile is one dense matmul with a mask instead of a gather
    of ``kernel_size ** 2`` keys per query. Returns a tensor shaped like ``query``.
    """
    batch, heads, height, width, head_dim = query.shape
    check_neighborhood_size(height, width, kernel_size, dilation)
    tokens = height * width
    query_index, key_index, bias_index, inverse, tile_queries, tile_keys = _tile_indices(
        height, width, kernel_size, dilation, tile, query.device,
    )
    tiles = key_index.numel() // tile_keys

    def gather(tensor: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
        flat = tensor.reshape(batch, heads, tokens, head_dim).index_select(2, index)
        return flat.view(batch, heads, tiles, size, head_dim)

    query_tiles = gather(query, query_index, tile_queries)
    key_tiles = gather(key, key_index, tile_keys)
    value_tiles = gather(value, key_index, tile_keys)

    attn = query_tiles @ key_tiles.transpose(-1, -2)
    table = rpb.reshape(heads, -1) if rpb is not None else attn.new_zeros(heads, (2 * kernel_size - 1) ** 2)
    table = torch.cat([table.to(attn.dtype), attn.new_full((heads, 1), float("-inf"))], dim=1)
    attn = attn + table.index_select(1, bias_index).view(heads, tiles, tile_queries, tile_keys)
    attn = attn.softmax(dim=-1)
    if attn_drop is not None:
        attn = attn_drop(attn)

    out = (attn @ value_tiles).view(batch, heads, tiles * tile_queries, head_dim)
    return out.index_select(2, inverse).view(batch, heads, height, width, head_dim)


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
