"""Augmentation-policy interface and the built-in MRI policy.

A policy gives the per-image training and evaluation transforms, an optional
batch transform (Mixup/CutMix) and the preprocessing settings that travel with
an exported model. The MRI policy is built from timm's transforms and Mixup.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from timm.data import Mixup, create_transform


class AugmentationPolicy(Protocol):
    """Interface the trainer uses to get transforms and preprocessing from an augmentation policy."""

    def train_transform(self) -> Callable: ...

    def eval_transform(self) -> Callable: ...

    def batch_transform(self, num_classes: int, label_smoothing: float) -> Callable | None: ...

    def preprocessing(self) -> dict[str, Any]: ...


class MriPolicy:
    """Random resized crop, flip and RandAugment for training; resize and centre crop for evaluation.

    Brain MRI slices are grey, so colour jitter and random erasing stay off.
    Mixup and CutMix are available but off unless their alpha is above 0.
    """

    def __init__(self, config, img_size: int):
        self.config = config
        self.img_size = img_size

    def _randaugment(self) -> str | None:
        if self.config.randaugment_num_ops == 0 or self.config.randaugment_magnitude == 0:
            return None
        return f"rand-m{self.config.randaugment_magnitude}-n{self.config.randaugment_num_ops}-mstd0.5"

    def train_transform(self) -> Callable:
        return create_transform(
            input_size=self.img_size,
            is_training=True,
            scale=tuple(self.config.scale),
            hflip=self.config.hflip,
            vflip=0.0,
            color_jitter=None,
            auto_augment=self._randaugment(),
            interpolation=self.config.interpolation,
            mean=self.config.mean,
            std=self.config.std,
            re_prob=0.0,
        )

    def tensor_train_transform(self, seed: int) -> Callable:
        """Return the batched tensor version of :meth:`train_transform`, used with ``augment.backend=tensor``."""
        from zoo_core.augment.tensor import TensorAugment

        return TensorAugment.from_config(self.config, self.img_size, seed)

    def eval_transform(self) -> Callable:
        return create_transform(
            input_size=self.img_size,
            is_training=False,
            interpolation=self.config.interpolation,
            crop_pct=self.config.crop_pct,
            mean=self.config.mean,
            std=self.config.std,
        )

    def batch_transform(self, num_classes: int, label_smoothing: float) -> Callable | None:
        if self.config.mixup_alpha <= 0 and self.config.cutmix_alpha <= 0:
            return None
        return Mixup(
            mixup_alpha=self.config.mixup_alpha,
            cutmix_alpha=self.config.cutmix_alpha,
            label_smoothing=label_smoothing,
            num_classes=num_classes,
        )

    def preprocessing(self) -> dict[str, Any]:
        """Return the evaluation preprocessing in timm's pretrained_cfg terms."""
        return {
            "input_size": [3, self.img_size, self.img_size],
            "interpolation": self.config.interpolation,
            "crop_pct": self.config.crop_pct,
            "crop_mode": "center",
            "mean": list(self.config.mean),
            "std": list(self.config.std),
        }


def build_mri_policy(config, img_size: int) -> MriPolicy:
    return MriPolicy(config, img_size)
