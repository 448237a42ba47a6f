"""Register MedViTV2 models with brain-zoo.

Importing ``zoo_medvit2`` registers the timm models; this hook adds the zoo's
model specs. The size rule below is for the default configuration (dilation 1,
7x7 windows): the third stage runs neighborhood attention on a map of
ceil(size / 16) pixels, which must be at least 7.
"""

from __future__ import annotations

from functools import partial

from zoo_core.hookspecs import hookimpl
from zoo_core.registry import ModelSpec

from .medvit2 import MODEL_ARGS, _stage_block_kinds, check_input_size, default_cfgs, min_input_size

PAPER = (
    "Medical Image Classification with KAN-Integrated Transformers and Dilated Neighborhood Attention "
    "(Manzari et al., arXiv 2502.13693)"
)

RECIPES = {
    "medvit2_tiny": (),
    "medvit2_small": ("medvit2_small_224",),
    "medvit2_base": (),
    "medvit2_large": (),
}


def _size_rule(smallest: int) -> str:
    return (
        f"height and width of at least {smallest} pixels, so that the stage-3 feature map "
        f"(ceil(size / 16)) fits the 7x7 neighborhood-attention window; dilation d needs d times larger maps"
    )


@hookimpl
def register_models(register):
    for name, recipes in RECIPES.items():
        block_kinds = _stage_block_kinds(MODEL_ARGS[name]["depths"])
        smallest = min_input_size(block_kinds)
        register(
            ModelSpec(
                name=name,
                family="MedViTV2",
                default_img_size=224,
                paper=PAPER,
                size_rule=_size_rule(smallest),
                recipes=recipes,
                pretrained=default_cfgs[name].default.url,
                check_img_size=partial(check_input_size, block_kinds=block_kinds),
            )
        )
