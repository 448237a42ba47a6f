"""Built-in datasets, augmentation policy and trainer, registered through the plugin hooks."""

from zoo_core.hookspecs import hookimpl
from zoo_core.registry import AugmentationSpec, DatasetSpec, TrainerSpec


@hookimpl
def register_datasets(register):
    from zoo_core.data.datasets import build_kaggle, build_phantom, build_sample

    register(DatasetSpec("kaggle", build_kaggle, "Kaggle Brain Tumor MRI folder at data.root (Training/, Testing/)"))
    register(DatasetSpec("sample", build_sample, "the 17 real MRI slices bundled with brain-zoo"))
    register(DatasetSpec("phantom", build_phantom, "procedural MRI-like slices with class-specific lesions"))


@hookimpl
def register_augmentations(register):
    from zoo_core.augment.policy import build_mri_policy

    register(AugmentationSpec("mri", build_mri_policy, "resize/crop, flip, RandAugment; optional Mixup/CutMix"))


@hookimpl
def register_trainers(register):
    from zoo_core.train.trainer import DefaultTrainer

    register(TrainerSpec("default", DefaultTrainer, "AdamW, cosine with warmup, AMP, early stopping, DDP"))
