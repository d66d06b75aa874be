"""Precision rules of a region VLM: which encoder dtypes a model may keep, and when half-precision updates stall."""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from rsvlm_zoo.models.blocks.llms import DTYPES

# Below this learning rate an AdamW step (about lr in size) is smaller than half a bfloat16 ulp of a typical
# weight (|w| ~ 0.02: ulp 1.2e-4), so half-precision weights stop changing.
STALL_LR = 1e-4
_HALF = (torch.bfloat16, torch.float16)


def warn_if_updates_stall(model: nn.Module) -> None:
    """Warn (once per call) when trained tensors are bfloat16/float16 and their learning rate is below `STALL_LR`.

    Such weights round every small update away (`bf16-true` training at lr 2e-6 leaves them unchanged). The fix:
    `trainer.precision: bf16-mixed`, which keeps float32 master weights and computes in bfloat16.
    """
    hparams = getattr(model, "hparams", {})
    lr = min([hparams.get("lr", 1.0), *(hparams.get("block_lr") or {}).values()])
    half = sorted({str(p.dtype) for p in model.parameters() if p.requires_grad and p.dtype in _HALF})
    if half and lr < STALL_LR:
        rank_zero_warn(
            f"trained weights are {', '.join(half)} with a learning rate of {lr:g}: updates that small are rounded "
            "away and those weights barely change. Train with trainer.precision: bf16-mixed (float32 master weights, "
            "bfloat16 compute; a 4-bit LLM and encoder_dtype: bfloat16 keep the frozen parts small)"
        )


def frozen_encoder_dtype(name: str | None, train_encoder: bool) -> torch.dtype | None:
    """Parse `encoder_dtype`, refusing a dtype a trained encoder could not be optimised in."""
    if name is None:
        return None
    if name not in DTYPES:
        raise ValueError(f"encoder_dtype must be one of {sorted(DTYPES)} or null, got {name!r}")
    if train_encoder and DTYPES[name] != torch.float32:
        raise ValueError(
            f"encoder_dtype={name!r} keeps the encoder's weights in half precision, which only suits a frozen "
            "encoder; set train_encoder: false or encoder_dtype: null"
        )
    return DTYPES[name]
