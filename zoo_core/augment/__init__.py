"""Augmentation policies: the interface and the built-in MRI policy."""

from zoo_core.augment.policy import AugmentationPolicy, MriPolicy, build_mri_policy

__all__ = ["AugmentationPolicy", "MriPolicy", "build_mri_policy"]
