"""Register the TransNeXt models with brain-zoo.

TransNeXt follows Dai Shi, "TransNeXt: Robust Foveal Visual Perception for
Vision Transformers" (CVPR 2024, arXiv 2311.17132). The network is this
package's own implementation in :mod:`zoo_transnext.transnext`; its pretrained
weights are the official ImageNet-1k checkpoints on the Hugging Face Hub.
"""

from zoo_core.hookspecs import hookimpl
from zoo_core.registry import ModelSpec
from zoo_transnext.transnext import SIZE_RULE, check_img_size

PAPER = "TransNeXt: Robust Foveal Visual Perception for Vision Transformers (CVPR 2024, arXiv 2311.17132)"

# Model name -> (recipes shipped for it, Hub repository of the official 224 ImageNet-1k weights).
MODELS = {
    "transnext_micro": ((), "DaiShiResearch/transnext-micro-224-1k"),
    "transnext_tiny": (("transnext_tiny_224",), "DaiShiResearch/transnext-tiny-224-1k"),
    "transnext_small": ((), "DaiShiResearch/transnext-small-224-1k"),
    "transnext_base": ((), "DaiShiResearch/transnext-base-224-1k"),
}


@hookimpl
def register_models(register):
    for name, (recipes, hub_id) in MODELS.items():
        register(
            ModelSpec(
                name=name,
                family="TransNeXt",
                default_img_size=224,
                paper=PAPER,
                size_rule=SIZE_RULE,
                recipes=recipes,
                pretrained=hub_id,
                check_img_size=check_img_size,
            )
        )
