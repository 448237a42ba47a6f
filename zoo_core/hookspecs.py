"""Hook specifications that brain-zoo plugins implement.

Each hook receives a ``register`` callable. A plugin calls it once per item it
provides; the core records which plugin registered what.
"""

import pluggy

hookspec = pluggy.HookspecMarker("brain_zoo")
hookimpl = pluggy.HookimplMarker("brain_zoo")


@hookspec
def register_models(register):
    """Register model architectures: call ``register(ModelSpec(...))`` for each."""


@hookspec
def register_datasets(register):
    """Register datasets: call ``register(DatasetSpec(...))`` for each."""


@hookspec
def register_augmentations(register):
    """Register augmentation policies: call ``register(AugmentationSpec(...))`` for each."""


@hookspec
def register_trainers(register):
    """Register trainers: call ``register(TrainerSpec(...))`` for each."""


@hookspec
def register_commands(cli):
    """Add click commands or groups to the ``zoo`` command group ``cli``."""
