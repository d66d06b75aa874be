"""A run killed mid-epoch and resumed from its checkpoint ends with the weights of an uninterrupted run."""

import lightning as L
import pytest
import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.data.sources.resumable import EpochSeededSampler
from rsvlm_zoo.datamodules import RegionDataModule, SyntheticSource
from tests.resume_helpers import MAX_STEPS, assert_same_weights, fit_tiny, kill_and_resume


def test_resuming_mid_epoch_gives_the_uninterrupted_weights(tmp_path):
    train = SyntheticSource(12, seed=0)
    reference, _ = fit_tiny(tmp_path / "straight", seed=0, train=train)
    resumed, trainer = kill_and_resume(tmp_path / "killed", train)
    assert trainer.global_step == MAX_STEPS
    assert_same_weights(resumed, reference)


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
