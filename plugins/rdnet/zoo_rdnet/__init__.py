"""brain-zoo plugin for RDNet: registers timm's rdnet_tiny/small/base/large in the zoo."""

__version__ = "0.1.0"
