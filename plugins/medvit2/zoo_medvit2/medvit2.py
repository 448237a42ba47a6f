"""MedViTV2: KAN-integrated transformer with dilated neighborhood attention.

Follows Manzari et al., "Medical Image Classification with KAN-Integrated
Transformers and Dilated Neighborhood Attention" (arXiv 2502.13693). The
official code is github.com/Omid-Nejati/MedViTV2 (MIT licence); this is an
independent implementation that loads its checkpoints through
``checkpoint_filter_fn``.

The network is a convolutional stem and four stages of two block kinds:

* local blocks: neighborhood attention (7x7 window, relative position bias)
  followed by a locality feed-forward (1x1 conv, depth-wise conv,
  squeeze-excitation, 1x1 conv);
* global blocks: efficient multi-head self-attention on a spatially reduced
  key/value set, multi-head convolutional attention on a channel split, and a
  KAN feed-forward.

Where we deliberately differ from the official code:

* ``layout="official"`` (the default) keeps two reshapes that the official
  code applies without a permute, because its checkpoints were trained with
  them. ``layout="corrected"`` permutes properly, so it needs retraining.
* The official global block builds a locality feed-forward that it never
  calls; we do not build it and the checkpoint filter drops its weights.
* Neighborhood attention is our own pure-PyTorch module (NATTEN 0.17
  semantics, see ``neighborhood_attention.py``), so the model trains on CPU.
* ``dilations`` sets one dilation per stage; the official code uses 1.
* Non-square inputs work here; the official code needs square input.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
import torch.utils.checkpoint
from torch import nn
from timm.layers import DropPath, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from .kan import KANFeedForward
from .neighborhood_attention import NeighborhoodAttention2d

__all__ = ["MedViT2", "check_input_size", "min_input_size"]

_logger = logging.getLogger(__name__)

LAYOUTS = ("official", "corrected")
# One dilation per stage that makes each 7x7 window span the whole feature map
# at 224x224 input (maps of 56, 28 and 14 pixels). It needs input of at least 221.
DILATED_224 = (8, 4, 2, 1)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    # Depth-wise convolutions and BatchNorm run several times faster in channels_last on CPU
    # (oneDNN, torch 2.14), and the memory format does not change the values.
    return x.contiguous(memory_format=torch.channels_last)


def _make_divisible(value: float, divisor: int) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _stage_block_kinds(depths: Sequence[int]) -> list[list[str]]:
    """Return the official hybrid pattern of 'local' and 'global' blocks per stage."""
    if depths[2] % 3 != 0:
        raise ValueError(f"depths[2] must be a multiple of 3 for the local-local-global pattern, got {depths[2]}")
    return [
        ["local"] * depths[0],
        ["local"] * (depths[1] - 1) + ["global"],
        ["local", "local", "global"] * (depths[2] // 3),
        ["global"] * depths[3],
    ]


class ConvBnReLU(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size=3, stride=stride, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(out_chs)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class PatchEmbed(nn.Module):
    """Average-pool by 2 when ``stride == 2``, then a 1x1 conv and BatchNorm when channels change."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1):
        super().__init__()
        if stride == 2:
            self.pool = nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False)
        else:
            self.pool = nn.Identity()
        if stride == 2 or in_chs != out_chs:
            self.conv = nn.Conv2d(in_chs, out_chs, kernel_size=1, bias=False)
            self.norm = nn.BatchNorm2d(out_chs)
        else:
            self.conv = nn.Identity()
            self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(self.pool(x)))


class SqueezeExcite(nn.Module):
    def __init__(self, chs: int, reduction: int):
        super().__init__()
        hidden = chs // reduction
        self.fc1 = nn.Linear(chs, hidden)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, chs)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3))
        scale = self.gate(self.fc2(self.act(self.fc1(scale))))
        return x * scale[:, :, None, None]


class LocalityFeedForward(nn.Module):
    """Residual inverted bottleneck: 1x1 conv, depth-wise conv, squeeze-excitation, 1x1 conv."""

    def __init__(self, dim: int, kernel_size: int = 3, expand_ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = nn.Conv2d(dim, hidden, 1, bias=False)
        self.norm1 = nn.BatchNorm2d(hidden)
        self.act1 = nn.Hardswish()
        self.conv_dw = nn.Conv2d(
            hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden, bias=False,
        )
        self.norm2 = nn.BatchNorm2d(hidden)
        self.act2 = nn.Hardswish()
        # The official reduction equals dim, so the excitation bottleneck has expand_ratio channels.
        self.se = SqueezeExcite(hidden, reduction=dim)
        self.conv2 = nn.Conv2d(hidden, dim, 1, bias=False)
        self.norm3 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.act2(self.norm2(self.conv_dw(out)))
        out = self.norm3(self.conv2(self.se(out)))
        return x + out


class EfficientMHSA(nn.Module):
    """Multi-head self-attention whose keys and values are average-pooled over ``sr_ratio ** 2`` tokens."""

    def __init__(
        self,
        dim: int,
        head_dim: int = 32,
        qkv_bias: bool = True,
        sr_ratio: int = 1,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        self.num_heads = dim // head_dim
        self.head_dim = head_dim
        self.scale = head_dim ** -0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)

        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            # Pools consecutive tokens of the raster order, as the official code does.
            self.sr = nn.AvgPool1d(kernel_size=sr_ratio ** 2, stride=sr_ratio ** 2)
            self.norm = nn.BatchNorm1d(dim)
        else:
            self.sr = None
            self.norm = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q = self.q(x).reshape(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)

        if self.sr is not None:
            x = self.norm(self.sr(x.transpose(1, 2))).transpose(1, 2)
        k = self.k(x).reshape(batch, -1, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v(x).reshape(batch, -1, self.num_heads, self.head_dim).transpose(1, 2)

        attn = (q * self.scale) @ k.transpose(-1, -2)
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj_drop(self.proj(x))


class MHCA(nn.Module):
    """Multi-head convolutional attention: grouped 3x3 conv, BatchNorm, ReLU, 1x1 conv."""

    def __init__(self, dim: int, head_dim: int = 32):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim // head_dim, bias=False)
        self.norm = nn.BatchNorm2d(dim)
        self.act = nn.ReLU(inplace=True)
        self.proj = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.norm(self.conv(x))))


class LocalBlock(nn.Module):
    """Neighborhood attention and a locality feed-forward (the official LFP block)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        ffn_kernel_size: int = 3,
        mlp_ratio: float = 3.0,
        head_dim: int = 32,
        attn_kernel_size: int = 7,
        dilation: int = 1,
        drop_path: float = 0.0,
        attn_drop: float = 0.0,
        layout: str = "official",
    ):
        super().__init__()
        if out_chs % head_dim != 0:
            raise ValueError(f"block width {out_chs} is not divisible by head_dim {head_dim}")
        self.layout = layout
        self.patch_embed = PatchEmbed(in_chs, out_chs, stride)
        self.norm1 = nn.BatchNorm2d(out_chs)
        self.attn = NeighborhoodAttention2d(
            out_chs,
            num_heads=out_chs // head_dim,
            kernel_size=attn_kernel_size,
            dilation=dilation,
            attn_drop=attn_drop,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.BatchNorm2d(out_chs)
        self.mlp = LocalityFeedForward(out_chs, ffn_kernel_size, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _channels_last(self.patch_embed(x))
        batch, chs, height, width = x.shape

        out = self.norm1(x)
        if self.layout == "official":
            # NOTE: the official MedViTV2 reshapes NCHW to NHWC without a permute, so attention
            # mixes channel and pixel positions. Kept so its checkpoints give the same logits.
            out = self.attn(out.reshape(batch, height, width, chs)).reshape(batch, chs, height, width)
        else:
            out = self.attn(out.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = x + self.drop_path(_channels_last(out))

        # The feed-forward is itself residual, so x gains both norm2(x) and the bottleneck output.
        return x + self.mlp(self.norm2(x))


class GlobalBlock(nn.Module):
    """Efficient MHSA, MHCA on a channel split, and a KAN feed-forward (the official GFP block)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        sr_ratio: int = 1,
        mlp_ratio: float = 2.0,
        head_dim: int = 32,
        mix_block_ratio: float = 0.75,
        drop_path: float = 0.0,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        layout: str = "official",
        kan_kwargs: dict | None = None,
    ):
        super().__init__()
        self.layout = layout
        mhsa_chs = _make_divisible(int(out_chs * mix_block_ratio), 32)
        mhca_chs = out_chs - mhsa_chs
        if mhca_chs <= 0 or mhca_chs % head_dim != 0 or mhsa_chs % head_dim != 0:
            raise ValueError(
                f"global block width {out_chs} splits into {mhsa_chs} attention and {mhca_chs} convolution "
                f"channels; both must be positive multiples of head_dim {head_dim}"
            )

        self.patch_embed = PatchEmbed(in_chs, mhsa_chs, stride)
        self.norm1 = nn.BatchNorm2d(mhsa_chs)
        self.attn = EfficientMHSA(
            mhsa_chs, head_dim=head_dim, sr_ratio=sr_ratio, attn_drop=attn_drop, proj_drop=proj_drop,
        )
        self.drop_path_attn = DropPath(drop_path * mix_block_ratio) if drop_path > 0 else nn.Identity()

        self.projection = PatchEmbed(mhsa_chs, mhca_chs, stride=1)
        self.mhca = MHCA(mhca_chs, head_dim=head_dim)
        self.drop_path_mhca = DropPath(drop_path * (1 - mix_block_ratio)) if drop_path > 0 else nn.Identity()

        self.norm2 = nn.BatchNorm2d(out_chs)
        # NOTE: the official block also builds a LocalityFeedForward ('conv') that forward never
        # calls; it is left out here and checkpoint_filter_fn drops its weights.
        self.kan = KANFeedForward(out_chs, int(out_chs * mlp_ratio), **(kan_kwargs or {}))
        self.drop_path_kan = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _channels_last(self.patch_embed(x))
        batch, _, height, width = x.shape

        out = self.attn(self.norm1(x).flatten(2).transpose(1, 2))
        x = x + self.drop_path_attn(out.transpose(1, 2).reshape(x.shape))

        out = self.projection(x)
        out = out + self.drop_path_mhca(self.mhca(out))
        x = torch.cat([x, out], dim=1)
        chs = x.shape[1]

        out = self.norm2(x)
        if self.layout == "official":
            # NOTE: the official MedViTV2 reshapes NCHW to (N*H*W, C) without a permute before
            # the KAN; kept so its checkpoints give the same logits.
            out = self.kan(out.reshape(-1, chs)).reshape(batch, chs, height, width)
        else:
            out = self.kan(out.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.drop_path_kan(_channels_last(out))


class MedViT2Stage(nn.Module):
    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            for block in self.blocks:
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            return x
        return self.blocks(x)


class MedViT2(nn.Module):
    """MedViTV2 classifier with timm's model interface."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        stem_chs: Sequence[int] = (64, 32, 64),
        depths: Sequence[int] = (2, 2, 6, 2),
        dims: Sequence[int] = (64, 128, 256, 512),
        strides: Sequence[int] = (1, 2, 2, 2),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        dilations: Sequence[int] = (1, 1, 1, 1),
        head_dim: int = 32,
        attn_kernel_size: int = 7,
        local_mlp_ratio: float = 3.0,
        global_mlp_ratio: float = 2.0,
        mix_block_ratio: float = 0.75,
        kan_grid_min: float = -2.0,
        kan_grid_max: float = 2.0,
        kan_num_grids: int = 8,
        kan_denominator: float = 0.33,
        layout: str = "official",
        drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        global_pool: str = "avg",
    ):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout '{layout}'; choose one of {', '.join(LAYOUTS)}")
        if len(depths) != 4 or len(dims) != 4 or len(dilations) != 4:
            raise ValueError(
                f"depths, dims and dilations need one entry per stage (4), got {len(depths)}, {len(dims)} "
                f"and {len(dilations)}"
            )
        if global_pool not in ("avg", ""):
            raise ValueError(f"global_pool must be 'avg' or '', got '{global_pool}'")
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.global_pool = global_pool
        self.layout = layout
        self.strides = tuple(strides)
        self.dilations = tuple(dilations)
        self.attn_kernel_size = attn_kernel_size
        self.grad_checkpointing = False

        self.stem = nn.Sequential(
            ConvBnReLU(in_chans, stem_chs[0], stride=2),
            ConvBnReLU(stem_chs[0], stem_chs[1], stride=1),
            ConvBnReLU(stem_chs[1], stem_chs[2], stride=1),
            ConvBnReLU(stem_chs[2], stem_chs[2], stride=2),
        )

        kan_kwargs = dict(
            grid_min=kan_grid_min, grid_max=kan_grid_max, num_grids=kan_num_grids, denominator=kan_denominator,
        )
        block_kinds = _stage_block_kinds(depths)
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        in_chs = stem_chs[-1]
        reduction = 4
        block_index = 0
        stages = []
        self.feature_info = []
        # The official checkpoint numbers blocks 0..N-1 in one list; keep that order for the filter.
        self.official_block_names = []
        for stage_index, kinds in enumerate(block_kinds):
            blocks = []
            for index_in_stage, kind in enumerate(kinds):
                stride = strides[stage_index] if index_in_stage == 0 else 1
                if kind == "local":
                    block = LocalBlock(
                        in_chs,
                        dims[stage_index],
                        stride=stride,
                        ffn_kernel_size=7 if stage_index == 0 else 3,
                        mlp_ratio=local_mlp_ratio,
                        head_dim=head_dim,
                        attn_kernel_size=attn_kernel_size,
                        dilation=dilations[stage_index],
                        drop_path=dpr[block_index],
                        attn_drop=attn_drop_rate,
                        layout=layout,
                    )
                else:
                    block = GlobalBlock(
                        in_chs,
                        dims[stage_index],
                        stride=stride,
                        sr_ratio=sr_ratios[stage_index],
                        mlp_ratio=global_mlp_ratio,
                        head_dim=head_dim,
                        mix_block_ratio=mix_block_ratio,
                        drop_path=dpr[block_index],
                        attn_drop=attn_drop_rate,
                        proj_drop=proj_drop_rate,
                        layout=layout,
                        kan_kwargs=kan_kwargs,
                    )
                blocks.append(block)
                self.official_block_names.append(f"stages.{stage_index}.blocks.{index_in_stage}")
                in_chs = dims[stage_index]
                block_index += 1
            stages.append(MedViT2Stage(blocks))
            reduction *= strides[stage_index]
            self.feature_info.append(dict(num_chs=in_chs, reduction=reduction, module=f"stages.{stage_index}"))
        self.stages = nn.Sequential(*stages)
        self.block_kinds = block_kinds

        self.num_features = self.head_hidden_size = in_chs
        self.norm = nn.BatchNorm2d(in_chs)
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_chs, num_classes) if num_classes > 0 else nn.Identity()

        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # Same scheme as the official code: truncated normal for every linear and conv weight.
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {name for name, _ in self.named_parameters() if name.endswith(".rpb")}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(
            stem=r"^stem",
            blocks=r"^stages\.(\d+)" if coarse else [
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^norm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"global_pool must be 'avg' or '', got '{global_pool}'")
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def check_input_size(self, height: int, width: int) -> None:
        """Raise ``ValueError`` when the attention windows do not fit this input size."""
        check_input_size(height, width, self.block_kinds, self.strides, self.dilations, self.attn_kernel_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            self.check_input_size(x.shape[-2], x.shape[-1])
        x = self.stem(_channels_last(x))
        x = self.stages(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            x = x.mean((2, 3))
        x = self.head_drop(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _feature_map_sizes(size: int, strides: Sequence[int]) -> list[int]:
    # The stem halves twice and each stride-2 stage once, each time rounding up.
    size = -(-size // 4)
    sizes = []
    for stride in strides:
        size = -(-size // stride)
        sizes.append(size)
    return sizes


def check_input_size(
    height: int,
    width: int,
    block_kinds: Sequence[Sequence[str]],
    strides: Sequence[int] = (1, 2, 2, 2),
    dilations: Sequence[int] = (1, 1, 1, 1),
    kernel_size: int = 7,
) -> None:
    """Raise ``ValueError`` naming the size and the rule when a stage map is smaller than its window."""
    heights = _feature_map_sizes(height, strides)
    widths = _feature_map_sizes(width, strides)
    for stage_index, kinds in enumerate(block_kinds):
        span = kernel_size * dilations[stage_index]
        if "local" not in kinds or (heights[stage_index] >= span and widths[stage_index] >= span):
            continue
        smallest = min_input_size(block_kinds, strides, dilations, kernel_size)
        raise ValueError(
            f"input size {height}x{width} is not supported: stage {stage_index + 1} runs neighborhood "
            f"attention on a {heights[stage_index]}x{widths[stage_index]} feature map, but kernel_size "
            f"{kernel_size} with dilation {dilations[stage_index]} needs at least {span}x{span}; "
            f"use an input of at least {smallest}x{smallest} or smaller dilations"
        )


def min_input_size(
    block_kinds: Sequence[Sequence[str]],
    strides: Sequence[int] = (1, 2, 2, 2),
    dilations: Sequence[int] = (1, 1, 1, 1),
    kernel_size: int = 7,
) -> int:
    """Return the smallest height (and width) at which every neighborhood window fits."""
    smallest = 1
    for stage_index, kinds in enumerate(block_kinds):
        if "local" in kinds:
            total_stride = 4
            for stride in strides[:stage_index + 1]:
                total_stride *= stride
            span = kernel_size * dilations[stage_index]
            smallest = max(smallest, (span - 1) * total_stride + 1)
    return smallest


def _rename_official_key(key: str, block_names: list[str], block_kinds: list[str]) -> str | None:
    """Map one official MedViTV2 state-dict key to ours, or return None to drop it."""
    if key.startswith("proj_head.0."):
        return "fc." + key[len("proj_head.0."):]
    if not key.startswith("features."):
        return key

    _, index, rest = key.split(".", 2)
    prefix = block_names[int(index)]
    if block_kinds[int(index)] == "global":
        if rest.startswith("conv."):
            return None
        rest = rest.replace("e_mhsa.", "attn.", 1)
        rest = rest.replace("mhca.group_conv3x3.", "mhca.conv.", 1)
        rest = rest.replace("mhca.projection.", "mhca.proj.", 1)
        rest = rest.replace(".layernorm.", ".norm.").replace(".rbf.grid", ".grid").replace(".spline_linear.", ".fc.")
        return f"{prefix}.{rest}"

    # Local blocks: the locality feed-forward is an nn.Sequential officially, named modules here.
    sequential_names = {
        "conv.conv.0.": "mlp.conv1.",
        "conv.conv.1.": "mlp.norm1.",
        "conv.conv.3.": "mlp.conv_dw.",
        "conv.conv.4.": "mlp.norm2.",
        "conv.conv.6.fc.0.": "mlp.se.fc1.",
        "conv.conv.6.fc.2.": "mlp.se.fc2.",
        "conv.conv.7.": "mlp.conv2.",
        "conv.conv.8.": "mlp.norm3.",
    }
    for official, ours in sequential_names.items():
        if rest.startswith(official):
            rest = ours + rest[len(official):]
            break
    return f"{prefix}.{rest}"


def checkpoint_filter_fn(state_dict: dict, model: MedViT2) -> dict:
    """Convert an official MedViTV2 checkpoint (``MedViT_*.pth``) to this model's key names."""
    for wrapper in ("model", "state_dict", "model_state_dict"):
        if wrapper in state_dict and isinstance(state_dict[wrapper], dict):
            state_dict = state_dict[wrapper]
    if "proj_head.0.weight" not in state_dict:
        return state_dict

    block_kinds = [kind for kinds in model.block_kinds for kind in kinds]
    if len(block_kinds) != len(model.official_block_names):
        raise RuntimeError("internal error: block kinds and block names disagree")
    converted = {}
    dropped = 0
    for key, value in state_dict.items():
        if key.startswith("module."):
            key = key[len("module."):]
        new_key = _rename_official_key(key, model.official_block_names, block_kinds)
        if new_key is None:
            dropped += 1
            continue
        converted[new_key] = value

    # A checkpoint fine-tuned for another number of classes keeps only its features.
    if "fc.weight" in converted and isinstance(model.fc, nn.Linear):
        if converted["fc.weight"].shape != model.fc.weight.shape:
            _logger.info("dropping classifier of shape %s from checkpoint", tuple(converted["fc.weight"].shape))
            converted.pop("fc.weight")
            converted.pop("fc.bias", None)
    _logger.info("converted official MedViTV2 checkpoint; dropped %d unused global-block conv tensors", dropped)
    return converted


def _create_medvit2(variant: str, pretrained: bool = False, **kwargs) -> MedViT2:
    return build_model_with_cfg(
        MedViT2,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), flatten_sequential=True),
        **kwargs,
    )


def _cfg(url: str = "", **kwargs) -> dict:
    return {
        "url": url,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "stem.0.conv",
        "classifier": "fc",
        "license": "mit",
        "paper_ids": "arXiv:2502.13693",
        "paper_name": "Medical Image Classification with KAN-Integrated Transformers and Dilated Neighborhood Attention",
        "origin_url": "https://github.com/Omid-Nejati/MedViTV2",
        **kwargs,
    }


# The pretrained weights that the official main.py downloads for --pretrained; the
# repository does not say what data they were trained on. They are raw state dicts
# on Dropbox, and checkpoint_filter_fn renames their keys.
_OFFICIAL_URLS = {
    "tiny": "https://dl.dropbox.com/scl/fi/496jbihqp360jacpji554/MedViT_tiny.pth?rlkey=6hb9froxugvtg8l639jmspxfv&st=p9ef06j8&dl=0",
    "small": "https://dl.dropbox.com/scl/fi/6nnec8hxcn5da6vov7h2a/MedViT_small.pth?rlkey=yf5twra1cv6ep2oqr79tbzyg5&st=rwx5hy8z&dl=0",
    "base": "https://dl.dropbox.com/scl/fi/q5c0u515dd4oc8j55bhi9/MedViT_base.pth?rlkey=5duw3uomnsyjr80wykvedjhas&st=incconx4&dl=0",
    "large": "https://dl.dropbox.com/scl/fi/owujijpsl6vwd481hiydd/MedViT_large.pth?rlkey=cx9lqb4a1288nv4xlmux13zoe&st=kcehwbrb&dl=0",
}

default_cfgs = generate_default_cfgs({
    f"medvit2_{size}.official": _cfg(url=url) for size, url in _OFFICIAL_URLS.items()
})

MODEL_ARGS = {
    "medvit2_tiny": dict(stem_chs=(64, 32, 64), depths=(2, 2, 6, 1), dims=(64, 128, 192, 384), drop_path_rate=0.1),
    "medvit2_small": dict(stem_chs=(64, 32, 64), depths=(2, 2, 6, 2), dims=(64, 128, 256, 512), drop_path_rate=0.1),
    "medvit2_base": dict(stem_chs=(64, 32, 64), depths=(2, 2, 6, 2), dims=(96, 192, 384, 768), drop_path_rate=0.2),
    "medvit2_large": dict(stem_chs=(64, 32, 64), depths=(2, 2, 6, 2), dims=(96, 256, 512, 1024), drop_path_rate=0.2),
}


@register_model
def medvit2_tiny(pretrained: bool = False, **kwargs) -> MedViT2:
    return _create_medvit2("medvit2_tiny", pretrained, **dict(MODEL_ARGS["medvit2_tiny"], **kwargs))


@register_model
def medvit2_small(pretrained: bool = False, **kwargs) -> MedViT2:
    return _create_medvit2("medvit2_small", pretrained, **dict(MODEL_ARGS["medvit2_small"], **kwargs))


@register_model
def medvit2_base(pretrained: bool = False, **kwargs) -> MedViT2:
    return _create_medvit2("medvit2_base", pretrained, **dict(MODEL_ARGS["medvit2_base"], **kwargs))


@register_model
def medvit2_large(pretrained: bool = False, **kwargs) -> MedViT2:
    return _create_medvit2("medvit2_large", pretrained, **dict(MODEL_ARGS["medvit2_large"], **kwargs))
