"""Tiny real models for the test suite, registered as a brain-zoo plugin.

Load it with ``ZOO_PLUGIN_MODULES=zoo_test_plugins`` (tests/plugins on the
Python path). The timm test networks are real architectures with a few hundred
thousand parameters. ``zoo_test_nan`` turns its logits into NaN from a given
forward call on, to exercise the trainer's non-finite loss handling.
"""

import torch
from timm.models import register_model

from zoo_core.hookspecs import hookimpl
from zoo_core.registry import ModelSpec


class NanAfter(torch.nn.Module):
    """A small CNN whose output becomes NaN after ``nan_after`` training forward calls."""

    def __init__(self, num_classes: int = 4, nan_after: int = 3, **kwargs):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(),
                                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(8, num_classes)
        self.nan_after = nan_after
        self.calls = 0

    def forward(self, x):
        logits = self.head(self.features(x))
        if self.training:
            self.calls += 1
            if self.calls > self.nan_after:
                logits = logits * float("nan")
        return logits


@register_model
def zoo_test_nan(pretrained=False, num_classes=4, drop_rate=0.0, drop_path_rate=0.0, **kwargs):
    return NanAfter(num_classes=num_classes, **kwargs)


def _check_size(height: int, width: int) -> None:
    if height < 32 or width < 32:
        raise ValueError(f"input size {height}x{width} is too small: height and width must be at least 32")


@hookimpl
def register_models(register):
    for name in ("test_convnext", "test_resnet"):
        register(ModelSpec(name=name, family="timm-test", default_img_size=64, size_rule="at least 32 pixels",
                           check_img_size=_check_size))
    register(ModelSpec(name="zoo_test_nan", family="timm-test", default_img_size=32))
