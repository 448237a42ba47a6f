"""The ``zoo`` command: one module per command group, loaded when the command runs."""

from __future__ import annotations

import importlib
import logging
import os

import click

from zoo_core import __version__

# Command name -> "module:attribute". Modules import only when their command runs,
# so `zoo --help` stays fast and one broken command cannot break the others.
COMMANDS = {
    "train": "zoo_core.cli.train:train",
    "eval": "zoo_core.cli.evaluate:eval_command",
    "models": "zoo_core.cli.info:models",
    "plugins": "zoo_core.cli.info:plugins",
    "data": "zoo_core.cli.data:data",
    "bench": "zoo_core.cli.bench:bench",
    "compare": "zoo_core.cli.compare:compare",
    "export": "zoo_core.cli.hub:export",
    "push": "zoo_core.cli.hub:push",
    "predict": "zoo_core.cli.hub:predict",
    "sweep": "zoo_core.cli.sweep:sweep",
}


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use, plus plugin commands."""

    def list_commands(self, ctx):
        return sorted(set(COMMANDS) | set(self.commands) | set(_plugin_commands()))

    def get_command(self, ctx, name):
        if name in self.commands:
            return self.commands[name]
        if name in COMMANDS:
            module_name, attribute = COMMANDS[name].split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as error:
                if error.name != module_name:
                    raise
                return None
            return getattr(module, attribute)
        return _plugin_commands().get(name)


def _plugin_commands() -> dict[str, click.Command]:
    from zoo_core.plugins import get_plugin_manager

    extra = click.Group()
    get_plugin_manager().hook.register_commands(cli=extra)
    return dict(extra.commands)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="brain-zoo")
@click.option("-v", "--verbose", count=True, help="Log more: -v for info from libraries, -vv for debug.")
def cli(verbose: int) -> None:
    """brain-zoo: train, evaluate, compare and publish brain-tumour MRI classifiers."""
    level = logging.DEBUG if verbose > 1 else logging.INFO
    if int(os.environ.get("RANK", "0")) > 0:
        # In DDP runs only rank 0 reports progress; other ranks show warnings and errors.
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose == 0:
        for noisy in ("timm", "huggingface_hub", "PIL", "matplotlib", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main() -> None:
    cli()
