"""TransNeXt, rewritten so that one model runs at any input size that is a multiple of 32.

Follows Dai Shi, "TransNeXt: Robust Foveal Visual Perception for Vision
Transformers" (CVPR 2024, arXiv 2311.17132). The official code is
https://github.com/DaiShiResearch/TransNeXt (Apache-2.0). This file is an
independent implementation. Its parameter names match the official
checkpoints (``patch_embed{i}``, ``block{i}``, ``norm{i}``, ``head``), so the
released ImageNet-1k ``.pth`` files load without renaming.

Where this implementation deliberately differs from the official one:

* The official model fixes the relative coordinates, the 3x3 padding mask, the
  length scale and the pool size at construction for one ``img_size``. Here
  they are computed from the actual feature-map size and cached, so a model
  built once runs at 224, 256, 384 or 256x320 input, and a 224 checkpoint can
  be used at 384. ``pretrain_img_size`` (224 for the released weights) only
  scales the relative coordinates, as the official ``pretrain_size`` does.
* The 3x3 sliding-window branch gathers its neighbours with nine shifted
  slices of one zero-padded tensor instead of ``nn.Unfold`` and batched
  1x9 matrix products, which is faster on CPU and gives the same logits.
* ``drop_rate`` is timm's classifier dropout; the official ``drop_rate``
  (dropout after the attention projection and inside the MLP) is
  ``proj_drop_rate`` here.
* Input whose height or width is not a multiple of 32 raises ``ValueError``.

NOTE: the LayerNorms inside the patch embeddings and the pooled branch use
eps 1e-5 and all others eps 1e-6, because the official checkpoints were
trained that way.
"""

import functools
import logging
import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from timm.layers import DropPath, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

__all__ = ["TransNeXt", "check_img_size", "SIZE_RULE"]

_logger = logging.getLogger(__name__)

SIZE_MULTIPLE = 32
SIZE_RULE = "height and width must be positive multiples of 32 (for example 224, 256, 384 or 256x320)"


def check_img_size(height: int, width: int) -> None:
    """Raise ``ValueError`` unless TransNeXt can run on a ``height`` x ``width`` input."""
    if height <= 0 or width <= 0 or height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(f"input size {height}x{width} is not supported by TransNeXt: {SIZE_RULE}")


@functools.lru_cache(maxsize=64)
def _relative_position_table(
        query_size: Tuple[int, int],
        pool_size: Tuple[int, int],
        ref_size: Tuple[int, int],
        device: torch.device,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Build the log-spaced coordinates fed to the bias MLP and the index into them.

    Keys sit at the centres of the average-pooling bins. Offsets are scaled by
    the grid size at pretraining (``ref_size``), so the MLP receives inputs in
    the same range at any input size. Returns ``(index, table)``: ``table`` contains each
    distinct (dy, dx) once, ``index`` maps every (query, key) pair to its row.
    """
    offsets = []
    for axis in range(2):
        query_pos = torch.arange(query_size[axis], dtype=torch.float32, device=device)
        key_pos = F.adaptive_avg_pool1d(query_pos[None, None], pool_size[axis])[0, 0]
        delta = (query_pos[:, None] - key_pos[None, :]) / (ref_size[axis] - 1) * 8
        offsets.append(torch.unique(delta.flatten(), return_inverse=True))

    (values_h, index_h), (values_w, index_w) = offsets
    # Every (dy, dx) combination occurs because the two axes vary independently.
    table = torch.stack(torch.meshgrid(values_h, values_w, indexing="ij"), dim=-1).reshape(-1, 2)
    table = torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)

    index_h = index_h.reshape(query_size[0], 1, pool_size[0], 1)
    index_w = index_w.reshape(1, query_size[1], 1, pool_size[1])
    index = (index_h * values_w.numel() + index_w).reshape(-1)
    return index, table


@functools.lru_cache(maxsize=64)
def _local_window_stats(
        feat_size: Tuple[int, int],
        pool_len: int,
        window_size: int,
        device: torch.device,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return the padding mask (N, window_size**2) and the log length scale (N, 1).

    The mask is True where a window position falls outside the feature map.
    The length scale is log(valid window positions + pooled tokens) per query.
    """
    ones = torch.ones(1, 1, *feat_size, device=device)
    valid = F.unfold(ones, window_size, padding=window_size // 2)[0].t()
    padding_mask = valid == 0
    seq_length_scale = torch.log(valid.sum(-1, keepdim=True) + pool_len)
    return padding_mask, seq_length_scale


def _window_slices(padded: torch.Tensor, window_size: int, feat_size: Tuple[int, int]) -> List[torch.Tensor]:
    """Return the window_size**2 shifted (..., H, W) views of a zero-padded tensor, row-major."""
    H, W = feat_size
    return [
        padded[..., dy:dy + H, dx:dx + W]
        for dy in range(window_size)
        for dx in range(window_size)
    ]


class _WindowDot(torch.autograd.Function):
    """Dot products of each query with the keys in its sliding window.

    ``q`` and ``k`` are (B, heads, head_dim, H, W). The result is
    (window_size**2, B, heads, H, W) and zero where the window leaves the
    feature map. Channels come before the spatial axes, so every product and
    reduction runs over long contiguous rows. The backward accumulates into
    one padded buffer with in-place ``addcmul_``. Plain autograd through the
    nine slices would allocate and zero a padded gradient per slice.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, window_size: int) -> torch.Tensor:
        pad = window_size // 2
        k_padded = F.pad(k, (pad, pad, pad, pad))
        k_shifts = _window_slices(k_padded, window_size, q.shape[-2:])
        out = torch.stack([(q * k_shift).sum(2) for k_shift in k_shifts])
        ctx.save_for_backward(q, k_padded)
        ctx.window_size = window_size
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        q, k_padded = ctx.saved_tensors
        window_size = ctx.window_size
        H, W = q.shape[-2:]
        pad = window_size // 2
        grad_out = grad_out.unsqueeze(3)

        grad_q = torch.zeros_like(q)
        grad_k_padded = torch.zeros_like(k_padded)
        k_shifts = _window_slices(k_padded, window_size, (H, W))
        grad_k_shifts = _window_slices(grad_k_padded, window_size, (H, W))
        for j, (k_shift, grad_k_shift) in enumerate(zip(k_shifts, grad_k_shifts)):
            grad_q.addcmul_(grad_out[j], k_shift)
            grad_k_shift.addcmul_(grad_out[j], q)
        return grad_q, grad_k_padded[..., pad:pad + H, pad:pad + W], None


class _WindowSum(torch.autograd.Function):
    """Weighted sum of the values in each query's sliding window.

    ``weights`` is (window_size**2, B, heads, H, W) and ``v`` is
    (B, heads, head_dim, H, W); positions outside the feature map contribute
    zero. The backward uses a single padded buffer, as ``_WindowDot`` does.
    """

    @staticmethod
    def forward(ctx, weights: torch.Tensor, v: torch.Tensor, window_size: int) -> torch.Tensor:
        pad = window_size // 2
        v_padded = F.pad(v, (pad, pad, pad, pad))
        weights_expanded = weights.unsqueeze(3)
        out = torch.zeros_like(v)
        for j, v_shift in enumerate(_window_slices(v_padded, window_size, v.shape[-2:])):
            out.addcmul_(weights_expanded[j], v_shift)
        ctx.save_for_backward(weights, v_padded)
        ctx.window_size = window_size
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        weights, v_padded = ctx.saved_tensors
        window_size = ctx.window_size
        H, W = grad_out.shape[-2:]
        pad = window_size // 2
        weights_expanded = weights.unsqueeze(3)

        v_shifts = _window_slices(v_padded, window_size, (H, W))
        grad_weights = torch.stack([(grad_out * v_shift).sum(2) for v_shift in v_shifts])
        grad_v_padded = torch.zeros_like(v_padded)
        for j, grad_v_shift in enumerate(_window_slices(grad_v_padded, window_size, (H, W))):
            grad_v_shift.addcmul_(weights_expanded[j], grad_out)
        return grad_weights, grad_v_padded[..., pad:pad + H, pad:pad + W], None


class ConvPatchEmbed(nn.Module):
    """Overlapping patch embedding: strided convolution, then LayerNorm over channels."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x = self.proj(x)
        feat_size = (x.shape[2], x.shape[3])
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x, feat_size


class DepthwiseConv(nn.Module):
    """3x3 depthwise convolution applied to a (B, N, C) token sequence."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, feat_size: Tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        x = x.transpose(1, 2).reshape(B, C, *feat_size)
        return self.dwconv(x).flatten(2).transpose(1, 2)


class ConvGlu(nn.Module):
    """Convolutional GLU: the gate branch passes a 3x3 depthwise convolution before GELU."""

    def __init__(self, dim: int, hidden_dim: int, proj_drop: float = 0.0):
        super().__init__()
        # The official layer spends 2/3 of the nominal MLP width on each branch.
        hidden_dim = int(2 * hidden_dim / 3)
        self.hidden_dim = hidden_dim
        self.fc1 = nn.Linear(dim, hidden_dim * 2)
        self.dwconv = DepthwiseConv(hidden_dim)
        self.act = nn.GELU()
        self.drop = nn.Dropout(proj_drop)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, feat_size: Tuple[int, int]) -> torch.Tensor:
        gate, value = self.fc1(x).chunk(2, dim=-1)
        x = self.act(self.dwconv(gate, feat_size)) * value
        x = self.drop(x)
        x = self.fc2(x)
        return self.drop(x)


def _init_temperature(num_heads: int) -> nn.Parameter:
    # softplus(t) starts at 1 / 0.24, the initial temperature of the paper.
    return nn.Parameter(torch.full((num_heads, 1, 1), 1 / 0.24).expm1().log())


class RelativePositionMlp(nn.Module):
    """Attention bias from a 2-layer MLP over log-spaced relative coordinates.

    The layers are attributes of the attention module in the official code
    (``cpb_fc1``, ``cpb_fc2``), so this mixin keeps those names.
    """

    num_heads: int
    cpb_fc1: nn.Linear
    cpb_fc2: nn.Linear

    def _init_position_mlp(self, num_heads: int, hidden_dim: int = 512) -> None:
        self.cpb_fc1 = nn.Linear(2, hidden_dim)
        self.cpb_act = nn.ReLU()
        self.cpb_fc2 = nn.Linear(hidden_dim, num_heads)

    def position_bias(self, index: torch.Tensor, table: torch.Tensor, query_len: int, key_len: int) -> torch.Tensor:
        bias = self.cpb_fc2(self.cpb_act(self.cpb_fc1(table)))
        return bias.t()[:, index].reshape(self.num_heads, query_len, key_len)


class FullAttention(RelativePositionMlp):
    """Length-scaled cosine attention over all tokens, used in the last stage."""

    def __init__(
            self,
            dim: int,
            num_heads: int,
            qkv_bias: bool = True,
            attn_drop: float = 0.0,
            proj_drop: float = 0.0,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_drop = attn_drop

        self.temperature = _init_temperature(num_heads)
        self.query_embedding = nn.Parameter(trunc_normal_(torch.empty(num_heads, 1, self.head_dim), std=0.02))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._init_position_mlp(num_heads)

    def forward(self, x: torch.Tensor, feat_size: Tuple[int, int], ref_size: Tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)

        index, table = _relative_position_table(feat_size, feat_size, ref_size, x.device)
        bias = self.position_bias(index, table.to(x.dtype), N, N)

        scale = F.softplus(self.temperature) * math.log(N)
        q = (F.normalize(q, dim=-1) + self.query_embedding) * scale
        x = F.scaled_dot_product_attention(
            q, F.normalize(k, dim=-1), v,
            attn_mask=bias.unsqueeze(0),
            dropout_p=self.attn_drop if self.training else 0.0,
            scale=1.0,
        )
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class AggregatedAttention(RelativePositionMlp):
    """Pixel-focused attention: a sliding window and a pooled branch share one softmax.

    Each query attends to its ``window_size`` x ``window_size`` neighbourhood
    at full resolution and to the feature map average-pooled by ``sr_ratio``.
    The window branch adds a learned per-position bias and a query-dependent
    term from the learnable tokens to its attention weights.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            sr_ratio: int,
            window_size: int = 3,
            qkv_bias: bool = True,
            attn_drop: float = 0.0,
            proj_drop: float = 0.0,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if window_size % 2 != 1:
            raise ValueError(f"window_size {window_size} must be odd so that the window is centred on the query")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.sr_ratio = sr_ratio
        self.window_size = window_size
        self.local_len = window_size ** 2

        self.temperature = _init_temperature(num_heads)
        self.query_embedding = nn.Parameter(trunc_normal_(torch.empty(num_heads, 1, self.head_dim), std=0.02))
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

        self.sr = nn.Conv2d(dim, dim, kernel_size=1)
        self.norm = nn.LayerNorm(dim)
        self.act = nn.GELU()
        self._init_position_mlp(num_heads)

        self.relative_pos_bias_local = nn.Parameter(
            trunc_normal_(torch.empty(num_heads, self.local_len), std=0.0004))
        self.learnable_tokens = nn.Parameter(
            trunc_normal_(torch.empty(num_heads, self.head_dim, self.local_len), std=0.02))
        self.learnable_bias = nn.Parameter(torch.zeros(num_heads, 1, self.local_len))

    def _pooled_tokens(self, x: torch.Tensor, feat_size: Tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        x = x.transpose(1, 2).reshape(B, C, *feat_size)
        x = self.act(self.sr(x))
        if feat_size[0] % self.sr_ratio == 0 and feat_size[1] % self.sr_ratio == 0:
            x = F.avg_pool2d(x, self.sr_ratio)
        else:
            x = F.adaptive_avg_pool2d(x, (feat_size[0] // self.sr_ratio, feat_size[1] // self.sr_ratio))
        return self.norm(x.flatten(2).transpose(1, 2))

    def forward(self, x: torch.Tensor, feat_size: Tuple[int, int], ref_size: Tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        H, W = feat_size
        pool_size = (H // self.sr_ratio, W // self.sr_ratio)
        pool_len = pool_size[0] * pool_size[1]
        padding_mask, seq_length_scale = _local_window_stats(feat_size, pool_len, self.window_size, x.device)

        q_norm = F.normalize(self.q(x).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2), dim=-1)
        q_scaled = (q_norm + self.query_embedding) * F.softplus(self.temperature) * seq_length_scale.to(x.dtype)

        # Window branch in (B, heads, head_dim, H, W) layout, so that neighbours are plain slices.
        k_local, v_local = self.kv(x).reshape(B, N, 2, self.num_heads, self.head_dim).unbind(2)
        k_local = F.normalize(k_local, dim=-1).permute(0, 2, 3, 1).reshape(B, self.num_heads, self.head_dim, H, W)
        v_local = v_local.permute(0, 2, 3, 1).reshape(B, self.num_heads, self.head_dim, H, W)
        q_spatial = q_scaled.transpose(-2, -1).reshape(B, self.num_heads, self.head_dim, H, W)
        attn_local = _WindowDot.apply(q_spatial, k_local, self.window_size)
        attn_local = attn_local.reshape(self.local_len, B, self.num_heads, N).permute(1, 2, 3, 0)
        attn_local = (attn_local + self.relative_pos_bias_local.unsqueeze(1)).masked_fill(padding_mask, float("-inf"))

        # Pooled branch.
        pooled = self._pooled_tokens(x, feat_size)
        k_pool, v_pool = self.kv(pooled).reshape(B, pool_len, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        index, table = _relative_position_table(feat_size, pool_size, ref_size, x.device)
        pool_bias = self.position_bias(index, table.to(x.dtype), N, pool_len)
        attn_pool = q_scaled @ F.normalize(k_pool, dim=-1).transpose(-2, -1) + pool_bias

        attn = torch.cat([attn_local, attn_pool], dim=-1).softmax(dim=-1)
        attn = self.attn_drop(attn)
        attn_local, attn_pool = attn.split([self.local_len, pool_len], dim=-1)

        # The learnable tokens add a query-dependent weight to each window position.
        local_weights = attn_local + q_norm @ self.learnable_tokens + self.learnable_bias
        local_weights = local_weights.permute(3, 0, 1, 2).reshape(self.local_len, B, self.num_heads, H, W)
        x_local = _WindowSum.apply(local_weights.contiguous(), v_local, self.window_size)
        x_pool = v_pool.transpose(-2, -1) @ attn_pool.transpose(-2, -1)
        x = (x_local.reshape(B, self.num_heads, self.head_dim, N) + x_pool).permute(0, 3, 1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class TransNeXtBlock(nn.Module):
    """Pre-norm block: token mixer (aggregated or full attention), then Convolutional GLU."""

    def __init__(
            self,
            dim: int,
            num_heads: int,
            sr_ratio: int,
            mlp_ratio: float,
            window_size: int = 3,
            qkv_bias: bool = True,
            proj_drop: float = 0.0,
            attn_drop: float = 0.0,
            drop_path: float = 0.0,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        if sr_ratio == 1:
            self.attn = FullAttention(
                dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        else:
            self.attn = AggregatedAttention(
                dim, num_heads, sr_ratio, window_size=window_size, qkv_bias=qkv_bias,
                attn_drop=attn_drop, proj_drop=proj_drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = ConvGlu(dim, int(dim * mlp_ratio), proj_drop=proj_drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor, feat_size: Tuple[int, int], ref_size: Tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), feat_size, ref_size))
        x = x + self.drop_path(self.mlp(self.norm2(x), feat_size))
        return x


class TransNeXt(nn.Module):
    """TransNeXt: four stages of overlapping patch embedding, blocks and LayerNorm.

    Stages 1-3 use aggregated attention and stage 4 full attention
    (``sr_ratios`` of 1). The input size is free within :data:`SIZE_RULE`;
    ``pretrain_img_size`` must be the size the weights were trained at.
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            embed_dims: Tuple[int, ...] = (72, 144, 288, 576),
            depths: Tuple[int, ...] = (2, 2, 15, 2),
            num_heads: Tuple[int, ...] = (3, 6, 12, 24),
            mlp_ratios: Tuple[float, ...] = (8, 8, 4, 4),
            sr_ratios: Tuple[int, ...] = (8, 4, 2, 1),
            window_size: int = 3,
            qkv_bias: bool = True,
            pretrain_img_size: int = 224,
            drop_rate: float = 0.0,
            proj_drop_rate: float = 0.0,
            attn_drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
    ):
        super().__init__()
        if global_pool not in ("avg", ""):
            raise ValueError(f"global_pool '{global_pool}' is not supported by TransNeXt; use 'avg' or ''")
        num_stages = len(depths)
        for name, values in (("embed_dims", embed_dims), ("num_heads", num_heads),
                             ("mlp_ratios", mlp_ratios), ("sr_ratios", sr_ratios)):
            if len(values) != num_stages:
                raise ValueError(f"{name} has {len(values)} entries but depths has {num_stages}; give one per stage")
        check_img_size(pretrain_img_size, pretrain_img_size)
        if pretrain_img_size // 2 ** (num_stages + 1) < 2:
            raise ValueError(
                f"pretrain_img_size {pretrain_img_size} is too small: the last stage grid must be at least 2x2")

        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_stages = num_stages
        self.pretrain_img_size = pretrain_img_size
        self.num_features = self.head_hidden_size = embed_dims[-1]
        self.feature_info = []

        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        cursor = 0
        for i in range(num_stages):
            stride = 4 if i == 0 else 2
            patch_embed = ConvPatchEmbed(
                in_chans if i == 0 else embed_dims[i - 1], embed_dims[i],
                patch_size=7 if i == 0 else 3, stride=stride)
            blocks = nn.ModuleList([
                TransNeXtBlock(
                    embed_dims[i], num_heads[i], sr_ratios[i], mlp_ratios[i],
                    window_size=window_size, qkv_bias=qkv_bias, proj_drop=proj_drop_rate,
                    attn_drop=attn_drop_rate, drop_path=dpr[cursor + j])
                for j in range(depths[i])
            ])
            cursor += depths[i]
            setattr(self, f"patch_embed{i + 1}", patch_embed)
            setattr(self, f"block{i + 1}", blocks)
            setattr(self, f"norm{i + 1}", nn.LayerNorm(embed_dims[i], eps=1e-6))
            self.feature_info.append(dict(num_chs=embed_dims[i], reduction=2 ** (i + 2), module=f"block{i + 1}"))

        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
            nn.init.normal_(module.weight, 0, math.sqrt(2.0 / fan_out))
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    @torch.jit.ignore
    def no_weight_decay_keywords(self) -> set:
        return {"query_embedding", "relative_pos_bias_local", "cpb", "temperature"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict:
        return dict(stem=r"^patch_embed1", blocks=r"^(?:patch_embed|block|norm)(\d+)")

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"global_pool '{global_pool}' is not supported by TransNeXt; use 'avg' or ''")
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last stage's normalized tokens, shape (B, H/32, W/32, C)."""
        check_img_size(x.shape[-2], x.shape[-1])
        B = x.shape[0]
        for i in range(self.num_stages):
            ref_grid = self.pretrain_img_size // 2 ** (i + 2)
            x, feat_size = getattr(self, f"patch_embed{i + 1}")(x)
            for block in getattr(self, f"block{i + 1}"):
                x = block(x, feat_size, (ref_grid, ref_grid))
            x = getattr(self, f"norm{i + 1}")(x)
            x = x.reshape(B, *feat_size, -1)
            if i != self.num_stages - 1:
                x = x.permute(0, 3, 1, 2)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            x = x.mean(dim=(1, 2))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: TransNeXt) -> Dict[str, torch.Tensor]:
    """Adapt an official TransNeXt checkpoint to ``model``.

    Accepts the bare state dict or one wrapped in a ``model`` or
    ``state_dict`` key, drops buffers that this implementation computes per
    input size, and drops a classifier whose class count differs from the
    model's so that a fresh head is used.
    """
    for key in ("model", "state_dict"):
        if key in state_dict and isinstance(state_dict[key], dict):
            state_dict = state_dict[key]
            break

    size_buffers = ("relative_pos_index", "relative_coords_table", "seq_length_scale", "padding_mask")
    state_dict = {k: v for k, v in state_dict.items() if not k.split(".")[-1].startswith(size_buffers)}

    head_weight = state_dict.get("head.weight")
    if head_weight is not None and head_weight.shape[0] != model.num_classes:
        _logger.warning(
            "dropping the checkpoint's %d-class head because the model has num_classes=%d; "
            "the new head starts from random weights", head_weight.shape[0], model.num_classes)
        state_dict.pop("head.weight")
        state_dict.pop("head.bias", None)
    return state_dict


def _create_transnext(variant: str, pretrained: bool = False, **kwargs) -> TransNeXt:
    if kwargs.get("features_only"):
        raise ValueError(f"features_only is not supported by {variant}; use forward_features instead")
    return build_model_with_cfg(
        TransNeXt, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        **kwargs)


def _cfg(url: str = "", **kwargs) -> Dict:
    return {
        "url": url,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "fixed_input_size": False,
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "patch_embed1.proj",
        "classifier": "head",
        "license": "apache-2.0",
        "paper_ids": "arXiv:2311.17132",
        "paper_name": "TransNeXt: Robust Foveal Visual Perception for Vision Transformers",
        "origin_url": "https://github.com/DaiShiResearch/TransNeXt",
        **kwargs,
    }


def _hub(size: str, file_stem: str, **kwargs) -> Dict:
    repo = f"DaiShiResearch/transnext-{size}"
    return _cfg(
        url=f"https://huggingface.co/{repo}/resolve/main/{file_stem}.pth",
        hf_hub_id=repo,
        hf_hub_filename=f"{file_stem}.pth",
        **kwargs,
    )


default_cfgs = generate_default_cfgs({
    "transnext_micro.in1k": _hub("micro-224-1k", "transnext_micro_224_1k"),
    "transnext_tiny.in1k": _hub("tiny-224-1k", "transnext_tiny_224_1k"),
    "transnext_small.in1k": _hub("small-224-1k", "transnext_small_224_1k"),
    "transnext_base.in1k": _hub("base-224-1k", "transnext_base_224_1k"),
    "transnext_small.in1k_ft_384": _hub(
        "small-384-1k-ft-1k", "transnext_small_384_1k_ft_1k",
        input_size=(3, 384, 384), pool_size=(12, 12), crop_pct=1.0),
    "transnext_base.in1k_ft_384": _hub(
        "base-384-1k-ft-1k", "transnext_base_384_1k_ft_1k",
        input_size=(3, 384, 384), pool_size=(12, 12), crop_pct=1.0),
})


@register_model
def transnext_micro(pretrained: bool = False, **kwargs) -> TransNeXt:
    model_args = dict(embed_dims=(48, 96, 192, 384), depths=(2, 2, 15, 2), num_heads=(2, 4, 8, 16))
    return _create_transnext("transnext_micro", pretrained, **dict(model_args, **kwargs))


@register_model
def transnext_tiny(pretrained: bool = False, **kwargs) -> TransNeXt:
    model_args = dict(embed_dims=(72, 144, 288, 576), depths=(2, 2, 15, 2), num_heads=(3, 6, 12, 24))
    return _create_transnext("transnext_tiny", pretrained, **dict(model_args, **kwargs))


@register_model
def transnext_small(pretrained: bool = False, **kwargs) -> TransNeXt:
    model_args = dict(embed_dims=(72, 144, 288, 576), depths=(5, 5, 22, 5), num_heads=(3, 6, 12, 24))
    return _create_transnext("transnext_small", pretrained, **dict(model_args, **kwargs))


@register_model
def transnext_base(pretrained: bool = False, **kwargs) -> TransNeXt:
    model_args = dict(embed_dims=(96, 192, 384, 768), depths=(5, 5, 23, 5), num_heads=(4, 8, 16, 32))
    return _create_transnext("transnext_base", pretrained, **dict(model_args, **kwargs))
