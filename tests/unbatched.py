"""One-sequence-at-a-time generation from the batch a `describe()` call builds: the reference for batching checks.

`describe()` answers every region in one left-padded generation batch. Greedy answers must not depend on
that batching; to check it, record the batch a `describe()` call hands to `generate`
(`recorded_generation_batches`), cut it into one-sequence batches without padding (`split_generation_batch`)
and generate each on its own (`generate_one_at_a_time`). The prompts, image and region tensors are then the
very ones of the batched call, whatever prompt template the model builds around a region.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

REGION_KEYS = ("region_masks", "region_boxes")


@contextmanager
def recorded_generation_batches(model: nn.Module) -> Iterator[list[dict[str, Any]]]:
    """Record every batch `model.generate` receives inside the block; generation itself runs unchanged.

    Args:
        model: A region VLM (anything with a `generate(batch, **kwargs)` method).

    Yields:
        The list that the recorded batches are appended to, in call order.
    """
    recorded: list[dict[str, Any]] = []
    original = model.generate

    def recording_generate(batch: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        recorded.append(batch)
        return original(batch, *args, **kwargs)

    model.generate = recording_generate  # instance attribute shadows the method
    try:
        yield recorded
    finally:
        del model.generate


def split_generation_batch(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """Cut a left-padded generation batch into one-sequence batches, each without padding.

    Args:
        batch: A batch from `generation_batch` (keys `input_ids`, `attention_mask`, `pixel_values`,
            `region_image_index`, optionally `sequence_image_index`, `region_masks`, `region_boxes`).

    Returns:
        One batch per sequence, in order, holding only that sequence's tokens, regions and image.
    """
    seq_image = batch.get("sequence_image_index")
    singles = []
    for j in range(batch["input_ids"].shape[0]):
        keep = batch["attention_mask"][j].bool()
        own_regions = batch["region_image_index"] == j
        image = int(seq_image[j]) if seq_image is not None else j
        one: dict[str, Any] = {
            "input_ids": batch["input_ids"][j : j + 1, keep],
            "attention_mask": batch["attention_mask"][j : j + 1, keep],
            "pixel_values": batch["pixel_values"][image : image + 1],
            "region_image_index": torch.zeros(int(own_regions.sum()), dtype=torch.long),
        }
        for key in REGION_KEYS:
            if batch.get(key) is not None:
                one[key] = batch[key][own_regions]
        singles.append(one)
    return singles


def generate_one_at_a_time(model: nn.Module, batch: dict[str, Any], **generate_kwargs: Any) -> list[str]:
    """Answers for every sequence of `batch`, each generated as a batch of one (see `split_generation_batch`).

    Args:
        model: The region VLM that built `batch`.
        batch: A left-padded generation batch.
        **generate_kwargs: Passed to `model.generate` (e.g. `max_new_tokens`).

    Returns:
        One answer per sequence, in the batch's order.
    """
    return [model.generate(one, **generate_kwargs)[0] for one in split_generation_batch(batch)]
