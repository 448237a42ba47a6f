"""KAN layers of the FasterKAN kind used as MedViTV2's global feed-forward.

A ``KANLayer`` normalises its input with LayerNorm, expands every feature into
radial basis values ``1 - tanh((x - g) / h) ** 2`` (the reflectional-switch
basis of FasterKAN, github.com/AthanasiosDelis/faster-kan) on a fixed grid of
points ``g`` with denominator ``h``, and maps the ``in_features * num_grids``
values linearly to ``out_features``. MedViTV2 uses 8 grid points on [-2, 2]
and ``h = 0.33``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["KANLayer", "KANFeedForward", "reflectional_switch_basis"]


def reflectional_switch_basis(x: torch.Tensor, grid: torch.Tensor, denominator: float) -> torch.Tensor:
    """Return ``1 - tanh((x[..., None] - grid) / denominator) ** 2`` with a trailing grid axis."""
    scaled = torch.tanh((x.unsqueeze(-1) - grid) / denominator)
    return 1.0 - scaled * scaled


class KANLayer(nn.Module):
    """LayerNorm, reflectional-switch radial basis on a fixed grid, then a bias-free linear map."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid_min: float = -2.0,
        grid_max: float = 2.0,
        num_grids: int = 8,
        denominator: float = 0.33,
    ):
        super().__init__()
        if num_grids < 1:
            raise ValueError(f"num_grids must be at least 1, got {num_grids}")
        if grid_max <= grid_min:
            raise ValueError(f"grid_max ({grid_max}) must be greater than grid_min ({grid_min})")
        if denominator <= 0:
            raise ValueError(f"denominator must be positive, got {denominator}")
        self.in_features = in_features
        self.out_features = out_features
        self.num_grids = num_grids
        self.denominator = denominator

        self.norm = nn.LayerNorm(in_features)
        # The grid is fixed, not trained; it is a buffer so checkpoints carry it.
        self.register_buffer("grid", torch.linspace(grid_min, grid_max, num_grids))
        self.fc = nn.Linear(in_features * num_grids, out_features, bias=False)
        nn.init.xavier_uniform_(self.fc.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        basis = reflectional_switch_basis(self.norm(x), self.grid, self.denominator)
        # Feature-major flattening: column i * num_grids + g of fc.weight belongs to feature i, grid point g.
        return self.fc(basis.flatten(-2))

    def extra_repr(self) -> str:
        return f"num_grids={self.num_grids}, denominator={self.denominator}"


class KANFeedForward(nn.Module):
    """Two ``KANLayer``s, ``dim -> hidden_dim -> dim``, with no activation between them."""

    def __init__(self, dim: int, hidden_dim: int, **layer_kwargs):
        super().__init__()
        self.layers = nn.ModuleList([
            KANLayer(dim, hidden_dim, **layer_kwargs),
            KANLayer(hidden_dim, dim, **layer_kwargs),
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x
