"""Register timm's RDNet models with brain-zoo.

RDNet follows Kim et al., "DenseNets Reloaded: Paradigm Shift Beyond ResNets
and ViTs" (ECCV 2024, arXiv 2403.19588). The network itself is timm's
``timm/models/rdnet.py``; this plugin adds only the zoo's model specs.
"""

from zoo_core.hookspecs import hookimpl
from zoo_core.registry import ModelSpec

PAPER = "DenseNets Reloaded: Paradigm Shift Beyond ResNets and ViTs (arXiv 2403.19588)"

# RDNet downsamples by 32 and pools globally, so any size from 32 pixels works.
# Its ImageNet weights were trained at 224 (and 384 for the large fine-tune).
SIZES = {
    "rdnet_tiny": ("rdnet_tiny_224",),
    "rdnet_small": (),
    "rdnet_base": ("rdnet_base_384",),
    "rdnet_large": (),
}


def check_img_size(height: int, width: int) -> None:
    if height < 32 or width < 32:
        raise ValueError(
            f"input size {height}x{width} is too small for RDNet: height and width must be at least 32 pixels"
        )


@hookimpl
def register_models(register):
    for name, recipes in SIZES.items():
        register(
            ModelSpec(
                name=name,
                family="RDNet",
                default_img_size=224,
                paper=PAPER,
                size_rule="height and width of at least 32 pixels; multiples of 32 avoid cropped borders",
                recipes=recipes,
                pretrained=f"naver-ai/{name}.nv_in1k",
                check_img_size=check_img_size,
            )
        )
