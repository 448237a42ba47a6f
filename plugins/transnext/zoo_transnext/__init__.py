"""brain-zoo plugin for TransNeXt.

Importing the package registers transnext_micro/tiny/small/base in timm's
model registry, so ``timm.create_model("transnext_tiny")`` works afterwards.
"""

from zoo_transnext import transnext  # noqa: F401  (registers the timm models)
from zoo_transnext.transnext import SIZE_RULE, TransNeXt, check_img_size

__all__ = ["SIZE_RULE", "TransNeXt", "check_img_size"]
__version__ = "0.1.0"
