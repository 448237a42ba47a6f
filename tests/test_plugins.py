"""Plugin discovery, ZOO_LOAD_PLUGINS, registries and the missing-plugin error."""

import inspect

import pytest

from zoo_core import hookspecs, plugins
from zoo_core.registry import DuplicateNameError, ModelSpec, Registry, UnknownNameError


def test_builtins_register_datasets_policy_trainer():
    registries = plugins.reload_plugins()
    assert {"kaggle", "sample", "phantom"} <= set(registries.datasets.names())
    assert "mri" in registries.augmentations
    assert "default" in registries.trainers
    assert registries.datasets.owners["sample"] == "builtins"


def test_installed_rdnet_plugin_discovered():
    infos = {info.name: info for info in (plugins.reload_plugins() and plugins.loaded_plugins())}
    assert "rdnet" in infos
    assert infos["rdnet"].distribution == "brain-zoo-rdnet"
    assert infos["rdnet"].registered["models"] == ["rdnet_tiny", "rdnet_small", "rdnet_base", "rdnet_large"]


def test_load_plugins_empty_loads_only_builtins(monkeypatch):
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    monkeypatch.delenv("ZOO_PLUGIN_MODULES")
    registries = plugins.reload_plugins()
    assert [info.name for info in plugins.loaded_plugins()] == ["builtins"]
    assert len(registries.models) == 0
    assert "sample" in registries.datasets


def test_load_plugins_filters_by_name(monkeypatch):
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "rdnet")
    registries = plugins.reload_plugins()
    names = {info.name for info in plugins.loaded_plugins()}
    assert "rdnet" in names
    assert "transnext" not in names
    assert "rdnet_tiny" in registries.models


def test_filtered_plugin_error_names_variable(monkeypatch):
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    plugins.reload_plugins()
    with pytest.raises(UnknownNameError, match="ZOO_LOAD_PLUGINS"):
        plugins.get_model_spec("rdnet_tiny")


def test_missing_plugin_error_names_extra(monkeypatch):
    monkeypatch.setattr(plugins, "_entry_points", lambda: [])
    plugins.reload_plugins()
    with pytest.raises(UnknownNameError, match=r"pip install brain-zoo\[transnext\]"):
        plugins.get_model_spec("transnext_tiny")


def test_unknown_model_suggests_closest():
    plugins.reload_plugins()
    with pytest.raises(UnknownNameError, match="did you mean 'test_convnext'"):
        plugins.get_model_spec("test_convnxt")


def test_plugin_modules_variable_registers_module():
    infos = {info.name: info for info in plugins.loaded_plugins()}
    assert infos["zoo_test_plugins"].registered["models"] == ["test_convnext", "test_resnet", "zoo_test_nan"]


def test_registry_rejects_duplicate_names():
    registry = Registry("model")
    registry.add(ModelSpec("a", "f", 224), "one")
    with pytest.raises(DuplicateNameError, match="plugin 'one' and plugin 'two'"):
        registry.add(ModelSpec("a", "f", 224), "two")


def test_every_hook_documented_and_tested():
    hooks = [name for name, value in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]
    assert hooks, "no hooks found"
    source = "".join(open(path).read() for path in __import__("glob").glob(__file__.rsplit("/", 1)[0] + "/test_*.py"))
    for name in hooks:
        assert getattr(hookspecs, name).__doc__, f"hook {name} has no docstring"
        assert name in source, f"hook {name} is not exercised by any test"


def test_register_commands_adds_cli_command():
    import click
    from click.testing import CliRunner

    from zoo_core.cli import cli

    class CommandPlugin:
        @staticmethod
        @hookspecs.hookimpl
        def register_commands(cli):
            @cli.command()
            def hello():
                """Say hello."""
                click.echo("hello from a plugin")

    plugins.reload_plugins(CommandPlugin)
    result = CliRunner().invoke(cli, ["hello"])
    assert result.exit_code == 0, result.output
    assert "hello from a plugin" in result.output


def test_each_registration_hook_fills_its_registry():
    from zoo_core.registry import AugmentationSpec, DatasetSpec, TrainerSpec

    class EverythingPlugin:
        @staticmethod
        @hookspecs.hookimpl
        def register_models(register):
            register(ModelSpec("plugin_model", "Test", 32))

        @staticmethod
        @hookspecs.hookimpl
        def register_datasets(register):
            register(DatasetSpec("plugin_data", lambda config, seed, progress=False: None))

        @staticmethod
        @hookspecs.hookimpl
        def register_augmentations(register):
            register(AugmentationSpec("plugin_policy", lambda config, img_size: None))

        @staticmethod
        @hookspecs.hookimpl
        def register_trainers(register):
            register(TrainerSpec("plugin_trainer", object))

    registries = plugins.reload_plugins(EverythingPlugin)
    owner = "EverythingPlugin"
    assert registries.models.owners["plugin_model"] == owner
    assert registries.datasets.owners["plugin_data"] == owner
    assert registries.augmentations.owners["plugin_policy"] == owner
    assert registries.trainers.owners["plugin_trainer"] == owner
    info = {i.name: i for i in plugins.loaded_plugins()}[owner]
    assert info.registered == {
        "models": ["plugin_model"],
        "datasets": ["plugin_data"],
        "augmentations": ["plugin_policy"],
        "trainers": ["plugin_trainer"],
    }


def test_misspelt_model_of_loaded_plugin_suggests_name():
    plugins.reload_plugins()
    with pytest.raises(UnknownNameError) as error:
        plugins.get_model_spec("rdnet_tinyy")
    assert "did you mean 'rdnet_tiny'" in str(error.value)
    assert "ZOO_LOAD_PLUGINS" not in str(error.value)


def test_filtered_plugin_error_has_no_misleading_suggestion(monkeypatch):
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "transnext")
    plugins.reload_plugins()
    with pytest.raises(UnknownNameError) as error:
        plugins.get_model_spec("rdnet_tiny")
    assert "ZOO_LOAD_PLUGINS='transnext'" in str(error.value)
    assert "did you mean" not in str(error.value)
