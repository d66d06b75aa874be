"""The optimiser of a region VLM: AdamW over the trained blocks with per-block learning rates, warm-up, cosine."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

BLOCKS = ("encoder", "extractor", "projector", "llm")


def adamw_warmup_cosine(model: L.LightningModule) -> dict[str, Any]:
    """AdamW with one parameter group per trained block, linear warm-up then cosine decay, stepped per batch.

    Reads `lr`, `block_lr`, `weight_decay` and `warmup_ratio` from `model.hparams`.

    Raises:
        ValueError: when the model's stage leaves nothing trainable.
    """
    block_lr = model.hparams.block_lr or {}
    groups = []
    for name in BLOCKS:
        params = [p for p in getattr(model, name).parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": block_lr.get(name, model.hparams.lr), "name": name})
    if not groups:
        raise ValueError(f"stage {model.stage} leaves nothing trainable")
    optimizer = torch.optim.AdamW(groups, weight_decay=model.hparams.weight_decay)
    total = max(1, int(model.trainer.estimated_stepping_batches))
    warmup = int(model.hparams.warmup_ratio * total)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
