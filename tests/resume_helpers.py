"""A tiny training run that can be killed mid-epoch and resumed from its checkpoint (shared by the resume tests).

`fit_tiny(root, seed, train)` fits `aquila_plus_tiny` (stage 3) for `MAX_STEPS` steps on `train` with batch 4,
saving a checkpoint every 2 steps under `root/ckpt`; `KillAtStep(step)` stands in for the process being killed;
`assert_same_weights` compares the resumed model with the uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from rsvlm_zoo import build_model
from rsvlm_zoo.data.sources.base import SampleSource
from rsvlm_zoo.datamodules import RegionDataModule

MAX_STEPS = 6  # 12 samples, batch 4: 3 batches an epoch, so the run spans two epochs
KILL_STEP = 5
RESUME_CKPT = "step=4.ckpt"  # step 4 = second batch of the second epoch


class Killed(RuntimeError):
    """Stands in for the process being killed."""


class KillAtStep(Callback):
    """Raises `Killed` when training reaches global step `step`."""

    def __init__(self, step: int = KILL_STEP) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            raise Killed(f"killed at step {self.step}")


def fit_tiny(
    root: Path,
    seed: int,
    train: SampleSource,
    callbacks: Sequence[Callback] = (),
    ckpt_path: Path | None = None,
    max_steps: int = MAX_STEPS,
) -> tuple[Any, L.Trainer]:
    """(model, trainer) after fitting the tiny model on `train` (model initialised from `seed`)."""
    torch.manual_seed(seed)
    model = build_model("aquila_plus_tiny", stage=3, lr=2e-3, warmup_ratio=0.2)
    data = RegionDataModule(train=train, batch_size=4, max_length=256, num_workers=0)
    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=[
            ModelCheckpoint(dirpath=root / "ckpt", filename="{step}", every_n_train_steps=2, save_top_k=-1),
            *callbacks,
        ],
    )
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return model, trainer


def kill_and_resume(root: Path, train: SampleSource) -> tuple[Any, L.Trainer]:
    """Fit on `train` until killed at `KILL_STEP`, then resume from step 4's checkpoint (another model seed)."""
    try:
        fit_tiny(root, seed=0, train=train, callbacks=[KillAtStep()])
    except Killed:
        pass
    else:
        raise AssertionError(f"the run was not killed at step {KILL_STEP}")
    ckpt = root / "ckpt" / RESUME_CKPT
    assert ckpt.is_file(), f"{ckpt} was not written"
    return fit_tiny(root, seed=1, train=train, ckpt_path=ckpt)  # another seed: the checkpoint decides


def assert_same_weights(got: Any, want: Any) -> None:
    """Every parameter and buffer of `got` equals `want`'s (rtol 1e-5, atol 1e-6)."""
    ref, new = want.state_dict(), got.state_dict()
    for name in ref:
        torch.testing.assert_close(new[name], ref[name], rtol=1e-5, atol=1e-6, msg=name)
