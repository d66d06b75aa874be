"""`rsvlm fit|validate|test|predict`: LightningCLI over every registered model and DataModule."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info

import rsvlm_zoo.datamodules  # noqa: F401  (every DataModule, so recipes' class_path short names resolve)
import rsvlm_zoo.models.blocks  # noqa: F401  (every block)
from rsvlm_zoo.evaluation import EvaluationWriter, PredictionWriter
from rsvlm_zoo.models.base import RegionVLM

# Lightning's own pytree helper builds `LeafSpec`s, which recent torch marks deprecated; the warning is about
# Lightning's code, not the user's run, and nothing the user does removes it.
QUIET_UPSTREAM = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",)

# Recipes write each width once and refer to it elsewhere with omegaconf interpolation, e.g. a projector's
# `out_dim: ${...llm.init_args.config.hidden_size}` (relative to the setting's own node, so the same recipe serves
# every subcommand). "omegaconf+" resolves after the config file and the command line are merged, so an override
# of the written-once value reaches every setting that refers to it.
RECIPE_PARSER_MODE = "omegaconf+"


class KeepingSaveConfig(SaveConfigCallback):
    """Save the run's resolved config without ever replacing a file: an existing name gets a numbered sibling.

    With a logger the file goes to the run's own version directory; without one (`logger: false`) to
    `default_root_dir`, where a user's own `config.yaml` may already stand.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Pick a file name that does not exist yet in the run directory, then save as Lightning does."""
        if self.already_saved:
            return
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
        trainer = super().instantiate_trainer(**kwargs)
        wanted = {"test": EvaluationWriter, "predict": PredictionWriter}.get(self.subcommand or "")
        if wanted is not None and not any(isinstance(c, wanted) for c in trainer.callbacks):
            trainer.callbacks.append(wanted())
        return trainer


def lightning_main(args: list[str] | None = None) -> int:
    """Run LightningCLI's `fit`, `validate`, `test` or `predict` (`-c recipe.yaml`, `--print_config`).

    Args:
        args: The arguments, starting with the subcommand; None: LightningCLI reads `sys.argv` itself.

    Given `args` stand in for the command line while the CLI runs (`sys.argv[1:]`), as if typed: LightningCLI
    then has one source of arguments (it warns when it gets both), and processes that Lightning launches (DDP)
    start with these arguments, e.g. a shipped recipe's resolved path.
    """
    for message in QUIET_UPSTREAM:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)
    typed = sys.argv
    if args is not None:
        sys.argv = [typed[0] if typed else "rsvlm", *args]
    try:
        RsvlmCLI(
            RegionVLM,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=None,
            save_config_callback=KeepingSaveConfig,
            save_config_kwargs={"overwrite": False},
            auto_configure_optimizers=False,
            parser_kwargs={"parser_mode": RECIPE_PARSER_MODE},
        )
    finally:
        sys.argv = typed
    return 0
