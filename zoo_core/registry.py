"""Typed registries for models, datasets, augmentation policies and trainers.

Plugins fill them through the hooks in :mod:`zoo_core.hookspecs`. The rest of
the core looks items up by name, and a failed lookup raises an error that
names the closest registered name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar


@dataclass(frozen=True)
class ModelSpec:
    """An architecture that the zoo can build through ``timm.create_model``.

    ``name`` is the timm model name. ``check_img_size(height, width)`` raises
    ``ValueError`` naming the size and the rule when the model cannot run at
    that size. ``size_rule`` states the same rule in words for ``zoo models``.
    """

    name: str
    family: str
    default_img_size: int
    paper: str = ""
    size_rule: str = "any size the network accepts"
    recipes: tuple[str, ...] = ()
    pretrained: str | None = None
    check_img_size: Callable[[int, int], None] | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: ``build(data_config, seed)`` returns a ``DatasetSplits``."""

    name: str
    build: Callable[..., Any]
    description: str = ""


@dataclass(frozen=True)
class AugmentationSpec:
    """An augmentation policy: ``build(augment_config, img_size)`` returns an ``AugmentationPolicy``."""

    name: str
    build: Callable[..., Any]
    description: str = ""


@dataclass(frozen=True)
class TrainerSpec:
    """A trainer class, constructed as ``cls(recipe, run_dir)``."""

    name: str
    cls: type
    description: str = ""


SpecT = TypeVar("SpecT")


class UnknownNameError(KeyError):
    """Raised when a registry has no item of the requested name."""

    def __str__(self) -> str:
        return str(self.args[0])


class DuplicateNameError(ValueError):
    """Raised when two plugins register the same name."""


@dataclass
class Registry(Generic[SpecT]):
    """Items of one kind, each remembered with the plugin that registered it."""

    kind: str
    items: dict[str, SpecT] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)

    def add(self, spec: SpecT, plugin: str) -> None:
        name = spec.name
        if name in self.items:
            raise DuplicateNameError(
                f"{self.kind} '{name}' is registered by both plugin '{self.owners[name]}' "
                f"and plugin '{plugin}'; uninstall one of them or restrict plugins with ZOO_LOAD_PLUGINS"
            )
        self.items[name] = spec
        self.owners[name] = plugin

    def get(self, name: str) -> SpecT:
        try:
            return self.items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        message = f"unknown {self.kind} '{name}'"
        close = difflib.get_close_matches(name, list(self.items), n=1)
        if close:
            message += f"; did you mean '{close[0]}'?"
        registered = ", ".join(sorted(self.items)) or "none"
        return f"{message} (registered: {registered})"

    def __contains__(self, name: object) -> bool:
        return name in self.items

    def __iter__(self) -> Iterator[SpecT]:
        return iter(self.items.values())

    def __len__(self) -> int:
        return len(self.items)

    def names(self) -> list[str]:
        return list(self.items)
