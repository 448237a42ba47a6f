"""``zoo models`` and ``zoo plugins``: what is installed and registered."""

from __future__ import annotations

import click


@click.command()
@click.option("--params/--no-params", default=True, help="Count parameters (builds each model on the meta device where it can, else on the CPU).")
@click.option("--num-classes", default=4, show_default=True, help="Classifier outputs used when counting parameters.")
def models(params, num_classes):
    """List registered architectures with parameter counts and default input size."""
    import timm
    import torch

    from zoo_core.plugins import get_registries

    registry = get_registries().models
    if not len(registry):
        raise click.ClickException("no models registered; install a plugin, e.g. pip install brain-zoo[rdnet]")
    rows = [("model", "family", "plugin", "params (M)", "input")]
    rules: dict[str, str] = {}
    for spec in sorted(registry, key=lambda s: (s.family, s.name)):
        count = "-"
        if params:
            count = f"{_count_parameters(timm, torch, spec.name, num_classes) / 1e6:.2f}"
        rows.append((spec.name, spec.family, registry.owners[spec.name], count,
                     f"{spec.default_img_size}x{spec.default_img_size}"))
        rules.setdefault(spec.family, spec.size_rule)
    _print_table(rows)
    if params:
        click.echo(f"\nparameter counts with a {num_classes}-class head")
    click.echo("\ninput sizes each family accepts:")
    for family, rule in rules.items():
        click.echo(f"  {family}: {rule}")


@click.command()
def plugins():
    """List loaded plugins, their versions and what each registered."""
    from zoo_core.plugins import allowed_plugins, loaded_plugins

    for info in loaded_plugins():
        click.echo(f"{info.name} {info.version} ({info.distribution})")
        for kind, names in sorted(info.registered.items()):
            click.echo(f"  {kind}: {', '.join(names)}")
    allowed = allowed_plugins()
    if allowed is not None:
        click.echo(f"\nZOO_LOAD_PLUGINS restricts loading to: {', '.join(sorted(allowed)) or '(none)'}")
        missing = sorted(allowed - {info.name for info in loaded_plugins()})
        if missing:
            click.echo(f"not installed, so not loaded: {', '.join(missing)}")


def _count_parameters(timm, torch, name: str, num_classes: int) -> int:
    """Count parameters without allocating weights where the model allows it."""
    try:
        with torch.device("meta"):
            model = timm.create_model(name, num_classes=num_classes)
    except (NotImplementedError, RuntimeError):
        # Models that read tensor values while building (e.g. .tolist()) need real storage.
        model = timm.create_model(name, num_classes=num_classes)
    return sum(p.numel() for p in model.parameters())


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            click.echo("  ".join("-" * width for width in widths))
