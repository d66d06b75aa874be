"""The one seam between data and model: what `RegionCollator` returns and every model step takes.

A batch is a dict (Lightning moves its tensors between devices; samplers and writers read its lists), typed here
so that collate, the models, the writers and the callbacks agree on its keys.
"""

from __future__ import annotations

from typing import Any, TypedDict

import torch


class _BatchCore(TypedDict):
    """Keys every batch has."""

    input_ids: torch.Tensor  # (B, T) token ids; `<image>`, `<mask>`, `<pos>` mark where vision tokens go
    attention_mask: torch.Tensor  # (B, T) 1 for tokens, 0 for padding (right for training, left for generation)
    labels: torch.Tensor  # (B, T) supervised ids, -100 elsewhere
    region_image_index: torch.Tensor  # (R,) the sequence each region belongs to
    sample_ids: list[str]  # one per sequence


class Batch(_BatchCore, total=False):
    """A collated batch: the core keys plus those its task and source add.

    Keys beyond the core:
        pixel_values: (B, 3, H, W) normalised images, or (U, 3, H, W) unique images with `sequence_image_index`.
        sequence_image_index: (B,) for each sequence, its image in `pixel_values` (each image encoded once).
        region_masks: (R, H, W) boolean masks at the model's input size (mask models).
        region_boxes: (R, 4) x1, y1, x2, y2 boxes in input pixels (box models).
        answers: The reference answer of each sequence (evaluation).
        references: Every reference of each sequence, e.g. all captions of an image (evaluation).
        meta: Per-sequence dicts (`sample_id`, `eval_name`, ...), written into prediction records.
        skipped: Samples of this batch skipped for bad data (`on_bad_sample="skip"`), logged as a sum.
        dropped_tiles: Tiles the tiling rule dropped by design (not bad data).
    """

    pixel_values: torch.Tensor
    sequence_image_index: torch.Tensor
    region_masks: torch.Tensor
    region_boxes: torch.Tensor
    answers: list[str]
    references: list[list[str]]
    meta: list[dict[str, Any]]
    skipped: int
    dropped_tiles: int


def batch_to(batch: Batch, device: torch.device | str) -> Batch:
    """The batch with every tensor on `device` (lists and counts as they are)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}  # type: ignore[return-value]
