"""brain-zoo plugin for MedViTV2; importing it registers medvit2_tiny/small/base/large in timm."""

from .kan import KANFeedForward, KANLayer
from .medvit2 import MedViT2, checkpoint_filter_fn
from .neighborhood_attention import NeighborhoodAttention2d, na2d, na2d_reference

__version__ = "0.1.0"

__all__ = [
    "KANFeedForward",
    "KANLayer",
    "MedViT2",
    "NeighborhoodAttention2d",
    "checkpoint_filter_fn",
    "na2d",
    "na2d_reference",
]
