"""The `rsvlm` / `lightning` command: LightningCLI (fit/validate/test/predict) plus rsvlm's own subcommands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import lightning as L
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info

OWN_COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("rsvlm_zoo.data.check", "data_main"),
    "describe": ("rsvlm_zoo.describe_cli", "describe_main"),
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


class KeepingSaveConfig(SaveConfigCallback):
    """Save the run's resolved config without ever replacing a file: an existing name gets a numbered sibling.

    With a logger the file goes to the run's own version directory; without one (`logger: false`) to
    `default_root_dir`, where a user's own `config.yaml` may already stand.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Pick a file name that does not exist yet in the run directory, then save as Lightning does."""
        if self.already_saved:
            return
        from pathlib import Path

        folder = Path(trainer.log_dir or trainer.default_root_dir)
        name = Path(self.config_filename)
        candidate, k = folder / name, 1
        while candidate.exists():
            candidate, k = folder / f"{name.stem}_{k}{name.suffix}", k + 1
        if candidate.name != name.name:
            rank_zero_info(f"{folder / name} exists and is kept; this run's config is saved as {candidate}")
        self.config_filename = candidate.name
        super().setup(trainer, pl_module, stage)


class RsvlmCLI(LightningCLI):
    """LightningCLI that writes what `test` and `predict` produce unless the recipe configures a writer itself.

    `test` gets an `EvaluationWriter` (predictions, metrics.json, metrics.md under `<default_root_dir>/eval`),
    `predict` a `PredictionWriter` (`<default_root_dir>/predictions.jsonl`).
    """

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """Build the trainer, then add the subcommand's writer when none is configured."""
        from rsvlm_zoo.evaluation import EvaluationWriter, PredictionWriter

        trainer = super().instantiate_trainer(**kwargs)
        wanted = {"test": EvaluationWriter, "predict": PredictionWriter}.get(self.subcommand or "")
        if wanted is not None and not any(isinstance(c, wanted) for c in trainer.callbacks):
            trainer.callbacks.append(wanted())
        return trainer


def main(args: list[str] | None = None) -> int | None:
    """Run the command line; `args` defaults to `sys.argv[1:]`.

    `fit`, `validate`, `test` and `predict` go to LightningCLI (`-c recipe.yaml`, `--print_config`);
    `data check`, `describe`, `eval`, `export` and `visualize` are rsvlm's own subcommands.
    """
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in OWN_COMMANDS:
        code = _own_command(argv[0])(argv[1:])
        if args is None:
            sys.exit(code)
        return code
    _import_components()
    from rsvlm_zoo.models.base import RegionVLM

    RsvlmCLI(
        RegionVLM,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,  # None: LightningCLI reads sys.argv itself
        save_config_callback=KeepingSaveConfig,
        save_config_kwargs={"overwrite": False},
        auto_configure_optimizers=False,
    )
    return 0
