"""Collate processed samples into one padded batch."""

from __future__ import annotations

from typing import Any

import torch

from rsvlm_zoo.batch import Batch
from rsvlm_zoo.data.processor import IGNORE_INDEX


class RegionCollator:
    """Pad token sequences and concatenate regions image by image.

    Evaluation items also carry `answers` (one reference each), `references` (every reference, e.g. all
    captions of the image) and `meta`; these become per-sample lists in the batch.

    Args:
        pad_token_id: Id written into padded positions.
        padding_side: "right" for training, "left" for batched generation.
    """

    def __init__(self, pad_token_id: int, padding_side: str = "right") -> None:
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.pad_token_id = pad_token_id
        self.padding_side = padding_side

    def __call__(self, items: list[dict[str, Any]]) -> Batch:
        """Build the batch dict the models consume."""
        longest = max(len(it["input_ids"]) for it in items)
        n = len(items)
        input_ids = torch.full((n, longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, longest), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((n, longest), dtype=torch.long)
        for i, it in enumerate(items):
            k = len(it["input_ids"])
            span = slice(longest - k, longest) if self.padding_side == "left" else slice(0, k)
            input_ids[i, span] = it["input_ids"]
            labels[i, span] = it["labels"]
            attention[i, span] = 1
        counts = torch.tensor([it["num_regions"] for it in items], dtype=torch.long)
        batch: Batch = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "region_image_index": torch.repeat_interleave(torch.arange(n), counts),
            "sample_ids": [it["sample_id"] for it in items],
        }
        if "pixel_values" in items[0]:  # absent when the caller stacks each unique image itself
            batch["pixel_values"] = torch.stack([it["pixel_values"] for it in items])
        for key in ("masks", "boxes"):
            if key in items[0]:
                batch[f"region_{key}"] = torch.cat([it[key] for it in items])
        for key in ("answers", "references", "meta"):
            if key in items[0]:
                batch[key] = [it[key] for it in items]
        return batch
