"""Plugin manager: loads built-ins and installed plugins on first use.

Installed plugins are found through the entry-point group ``brain_zoo``. Set
``ZOO_LOAD_PLUGINS`` to a comma-separated list of entry-point names to load only
those (an empty value loads none); built-ins always load.
``ZOO_PLUGIN_MODULES`` names extra importable modules (comma-separated) to
register as plugins without packaging them, e.g. plugins under development
or the test suite's tiny models. Set ``ZOO_TRACE_HOOKS=1`` to log every hook
call.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from zoo_core import hookspecs
from zoo_core.registry import (
    AugmentationSpec,
    DatasetSpec,
    ModelSpec,
    Registry,
    TrainerSpec,
    UnknownNameError,
)

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "brain_zoo"
BUILTIN_MODULES = ("zoo_core.builtins",)

# Model-name prefixes of the plugins this project publishes, so that a missing
# plugin can be named together with the extra that installs it.
KNOWN_PLUGINS = {
    "rdnet": ("rdnet_",),
    "transnext": ("transnext_",),
    "medvit2": ("medvit2_",),
}


@dataclass
class PluginInfo:
    """One loaded plugin and what it registered."""

    name: str
    version: str
    distribution: str
    registered: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Registries:
    """All registries, filled by the loaded plugins."""

    models: Registry[ModelSpec] = field(default_factory=lambda: Registry("model"))
    datasets: Registry[DatasetSpec] = field(default_factory=lambda: Registry("dataset"))
    augmentations: Registry[AugmentationSpec] = field(
        default_factory=lambda: Registry("augmentation policy")
    )
    trainers: Registry[TrainerSpec] = field(default_factory=lambda: Registry("trainer"))


@dataclass
class _State:
    manager: pluggy.PluginManager
    registries: Registries
    plugins: dict[str, PluginInfo]


_state: _State | None = None


def _split_env(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def allowed_plugins() -> set[str] | None:
    """Return the entry-point names that ZOO_LOAD_PLUGINS allows, or None when unset."""
    value = os.environ.get("ZOO_LOAD_PLUGINS")
    if value is None:
        return None
    return set(_split_env("ZOO_LOAD_PLUGINS"))


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _load(extra_plugins: tuple[object, ...] = ()) -> _State:
    manager = pluggy.PluginManager("brain_zoo")
    manager.add_hookspecs(hookspecs)
    if os.environ.get("ZOO_TRACE_HOOKS"):
        manager.trace.root.setwriter(logger.info)
        manager.enable_tracing()

    plugins: dict[str, PluginInfo] = {}
    from zoo_core import __version__

    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        manager.register(module, name="builtins")
        plugins["builtins"] = PluginInfo("builtins", __version__, "brain-zoo")

    allowed = allowed_plugins()
    unknown = sorted((allowed or set()) - {ep.name for ep in _entry_points()})
    if unknown:
        logger.warning(
            "ZOO_LOAD_PLUGINS names %s, but no installed plugin has that name (installed: %s)",
            ", ".join(unknown), ", ".join(ep.name for ep in _entry_points()) or "none",
        )
    for entry_point in _entry_points():
        if allowed is not None and entry_point.name not in allowed:
            logger.debug("skipping plugin %s: not in ZOO_LOAD_PLUGINS", entry_point.name)
            continue
        module = entry_point.load()
        manager.register(module, name=entry_point.name)
        dist = entry_point.dist
        plugins[entry_point.name] = PluginInfo(
            entry_point.name,
            dist.version if dist else "unknown",
            dist.metadata["Name"] if dist else "unknown",
        )

    for module_name in _split_env("ZOO_PLUGIN_MODULES"):
        module = importlib.import_module(module_name)
        manager.register(module, name=module_name)
        plugins[module_name] = PluginInfo(module_name, getattr(module, "__version__", "local"), "ZOO_PLUGIN_MODULES")

    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", repr(plugin))
        manager.register(plugin, name=name)
        plugins[name] = PluginInfo(name, "test", "test")

    registries = _collect(manager, plugins)
    return _State(manager, registries, plugins)


def _collect(manager: pluggy.PluginManager, plugins: dict[str, PluginInfo]) -> Registries:
    """Call every registration hook plugin by plugin, recording who registered what."""
    registries = Registries()
    hooks = {
        "models": manager.hook.register_models,
        "datasets": manager.hook.register_datasets,
        "augmentations": manager.hook.register_augmentations,
        "trainers": manager.hook.register_trainers,
    }
    for kind, hook in hooks.items():
        registry = getattr(registries, kind)
        for impl in reversed(hook.get_hookimpls()):
            plugin_name = impl.plugin_name

            def register(spec, _registry=registry, _plugin=plugin_name, _kind=kind):
                _registry.add(spec, _plugin)
                plugins[_plugin].registered.setdefault(_kind, []).append(spec.name)

            impl.function(register=register)
    return registries


def get_plugin_manager() -> pluggy.PluginManager:
    return _get_state().manager


def _get_state() -> _State:
    global _state
    if _state is None:
        _state = _load()
    return _state


def get_registries() -> Registries:
    """Return the registries, loading plugins on the first call."""
    return _get_state().registries


def loaded_plugins() -> list[PluginInfo]:
    return list(_get_state().plugins.values())


def reload_plugins(*extra_plugins: object) -> Registries:
    """Load plugins again, honouring the current ZOO_LOAD_PLUGINS; extra modules register too."""
    global _state
    _state = _load(tuple(extra_plugins))
    return _state.registries


def get_model_spec(name: str) -> ModelSpec:
    """Look up a model, naming the plugin and extra to install when it is missing."""
    models = get_registries().models
    if name in models:
        return models.get(name)

    allowed = allowed_plugins()
    for plugin, prefixes in KNOWN_PLUGINS.items():
        if not name.startswith(prefixes):
            continue
        installed = {ep.name for ep in _entry_points()}
        if plugin in installed:
            if allowed is not None and plugin not in allowed:
                raise UnknownNameError(
                    f"model '{name}' belongs to the plugin '{plugin}', which is installed but not "
                    f"loaded because ZOO_LOAD_PLUGINS={os.environ.get('ZOO_LOAD_PLUGINS', '')!r}; "
                    f"add '{plugin}' to ZOO_LOAD_PLUGINS or unset it"
                )
            # The plugin is loaded, so the name is misspelt: suggest the closest one.
            break
        raise UnknownNameError(
            f"model '{name}' needs the plugin brain-zoo-{plugin}, which is not installed; "
            f"install it with: pip install brain-zoo[{plugin}] "
            f"(from a clone of the repository: pip install -e plugins/{plugin})"
        )
    return models.get(name)
