"""The `rsvlm` / `lightning` command: LightningCLI (fit/validate/test/predict) plus rsvlm's own subcommands."""

from __future__ import annotations

import sys
from collections.abc import Callable

import lightning as L
from lightning.pytorch.cli import LightningCLI

OWN_COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("rsvlm_zoo.data.check", "data_main"),
    "eval": ("rsvlm_zoo.metrics.eval_cli", "eval_main"),
    "export": ("rsvlm_zoo.export", "export_main"),
    "visualize": ("rsvlm_zoo.visualize_cli", "visualize_main"),
}


def _own_command(name: str) -> Callable[[list[str]], int]:
    import importlib

    module, func = OWN_COMMANDS[name]
    return getattr(importlib.import_module(module), func)


def _import_components() -> None:
    """Import every model, block and DataModule so YAML `class_path` short names resolve."""
    import rsvlm_zoo.datamodules  # noqa: F401
    import rsvlm_zoo.models  # noqa: F401
    import rsvlm_zoo.models.blocks  # noqa: F401


def main(args: list[str] | None = None) -> int | None:
    """Run the command line; `args` defaults to `sys.argv[1:]`.

    `fit`, `validate`, `test` and `predict` go to LightningCLI (`-c recipe.yaml`, `--print_config`);
    `data check`, `eval`, `export` and `visualize` are rsvlm's own subcommands.
    """
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in OWN_COMMANDS:
        code = _own_command(argv[0])(argv[1:])
        if args is None:
            sys.exit(code)
        return code
    _import_components()
    from rsvlm_zoo.models.base import RegionVLM

    LightningCLI(
        RegionVLM,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,  # None: LightningCLI reads sys.argv itself
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
    return 0
