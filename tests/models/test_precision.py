"""The full-size recipes' precision learns at their small learning rates: float32 master weights for every trained
tensor, bfloat16 compute, the frozen encoder in bfloat16 and a 4-bit LLM (QLoRA), as QLoRA trainers run it."""

from __future__ import annotations

import warnings

import lightning as L
import pytest
import torch
import yaml

from rsvlm_zoo import build_model
from rsvlm_zoo.models.lora import LoraSettings
from tests.models.test_aquila_plus import train_batch

LR = 2e-6  # MGIMM's stage-2 projector rate, the smallest any full-size recipe uses


class OneBatch(torch.utils.data.Dataset):
    def __init__(self, batch, n):
        self.batch, self.n = batch, n

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        return self.batch


def qlora_model(**llm):
    torch.manual_seed(0)
    return build_model(
        "aquila_plus_tiny",
        llm={"load_in_4bit": True, "compute_dtype": "bfloat16", "torch_dtype": "bfloat16", **llm},
        lora=LoraSettings(r=8, alpha=16, dropout=0.0),
        encoder_dtype="bfloat16",
        lr=LR,
        warmup_ratio=0.0,
    )


def fit_ten_steps(model, precision, tmp_path):
    batch = train_batch(model, n=2)
    loader = torch.utils.data.DataLoader(OneBatch(batch, 10), batch_size=None)
    before = {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer = L.Trainer(
        accelerator="cpu",
        precision=precision,
        max_steps=10,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, train_dataloaders=loader)
    after = dict(model.named_parameters())
    changed = {n: after[n].detach().float() != b for n, b in before.items()}
    stall_warnings = [w for w in caught if "rounded away" in str(w.message)]
    return changed, stall_warnings


@pytest.fixture(scope="module")
def reachable(tmp_path_factory):
    """Elements that 10 steps in float32 move: the rest get no gradient from this batch at all (mask-position
    inputs that are zero everywhere, ReLUs that never fire), whatever the precision."""
    changed, _ = fit_ten_steps(qlora_model(), "32-true", tmp_path_factory.mktemp("fp32"))
    assert all(c.any() for c in changed.values())
    return changed


def moved_share(changed, reachable):
    return {n: (changed[n] & reach).sum().item() / reach.sum().item() for n, reach in reachable.items()}


def test_bf16_mixed_with_a_4bit_llm_moves_every_trained_tensor_at_lr_2e_6(tmp_path, reachable):
    model = qlora_model()
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trained) and any(n.startswith("extractor.") for n in trained)
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    assert next(model.encoder.parameters()).dtype == torch.bfloat16
    changed, stall_warnings = fit_ten_steps(model, "bf16-mixed", tmp_path)
    assert not stall_warnings
    share = moved_share(changed, reachable)
    low = {n: f for n, f in share.items() if f < 0.99}
    assert not low, f"trained tensors with < 99 % of their reachable elements changed: {low}"
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


def test_bf16_true_stalls_at_that_rate_and_says_how_to_fix_it(tmp_path, reachable):
    model = qlora_model()
    changed, stall_warnings = fit_ten_steps(model, "bf16-true", tmp_path)
    assert len(stall_warnings) == 1 and "bf16-mixed" in str(stall_warnings[0].message)
    share = moved_share(changed, reachable)
    assert min(share.values()) < 0.5, share  # the stall the warning is about


@pytest.mark.parametrize("recipe", ["recipes/aquila_plus.yaml", "recipes/mgimm.yaml", "recipes/mgimm_stage1.yaml"])
def test_full_size_recipes_use_the_precision_that_learns(recipe):
    with open(recipe) as f:
        cfg = yaml.safe_load(f)
    assert cfg["trainer"]["precision"] == "bf16-mixed"
    assert cfg["model"]["init_args"]["encoder_dtype"] == "bfloat16"


def test_kbit_preparation_keeps_non_reentrant_checkpointing():
    model = qlora_model(gradient_checkpointing=True)
    base = model.llm.model.get_base_model()
    assert base.is_gradient_checkpointing
    layer = base.model.layers[0]
    kwargs = layer._gradient_checkpointing_func.keywords
    assert kwargs.get("use_reentrant") is False
