"""A run killed mid-epoch and resumed from its checkpoint ends with the weights of an uninterrupted run."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from rsvlm_zoo import build_model
from rsvlm_zoo.data.sources.resumable import EpochSeededSampler
from rsvlm_zoo.datamodules import RegionDataModule, SyntheticSource

MAX_STEPS = 6  # 3 batches an epoch: the run spans two epochs


class Killed(RuntimeError):
    """Stands in for the process being killed."""


class KillAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise Killed(f"killed at step {self.step}")


def run(root, seed: int, callbacks=(), ckpt_path=None):
    torch.manual_seed(seed)
    model = build_model("aquila_plus_tiny", stage=3, lr=2e-3, warmup_ratio=0.2)
    data = RegionDataModule(train=SyntheticSource(12, seed=0), batch_size=4, max_length=256)
    trainer = L.Trainer(
        max_steps=MAX_STEPS,
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


def test_resuming_mid_epoch_gives_the_uninterrupted_weights(tmp_path):
    reference, _ = run(tmp_path / "straight", seed=0)

    with pytest.raises(Killed):
        run(tmp_path / "killed", seed=0, callbacks=[KillAtStep(5)])
    ckpt = tmp_path / "killed" / "ckpt" / "step=4.ckpt"  # step 4 = second batch of the second epoch
    assert ckpt.is_file()
    resumed, trainer = run(tmp_path / "killed", seed=1, ckpt_path=ckpt)  # another seed: the checkpoint decides

    assert trainer.global_step == MAX_STEPS
    ref, got = reference.state_dict(), resumed.state_dict()
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-6, msg=name)


def test_epoch_seeded_sampler_orders_depend_on_seed_and_epoch_only():
    a, b = EpochSeededSampler(10, seed=3), EpochSeededSampler(10, seed=3)
    b.set_epoch(1)
    first, second = list(a), list(b)
    assert sorted(first) == list(range(10)) and first != second
    a.set_epoch(1)
    a.resume_after(4)
    assert list(a) == second[4:]
    assert list(a) == second, "resuming skips only the next iteration"
    assert len(a) == 10
    with pytest.raises(ValueError, match="cannot resume after 11"):
        a.resume_after(11)


def test_a_non_finite_loss_stops_the_run_naming_step_and_batch(tmp_path):
    torch.manual_seed(0)
    model = build_model("aquila_plus_tiny", stage=3)
    with torch.no_grad():
        model.projector.net[0].weight.fill_(float("nan"))
    data = RegionDataModule(train=SyntheticSource(8, seed=0), batch_size=4, max_length=256)
    trainer = L.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(FloatingPointError, match=r"non-finite loss nan at global step 0, batch 0 \(samples \['scene"):
        trainer.fit(model, data)
