"""The shared `describe()` pipeline: any image form -> arrays, samples -> the model's processor -> one generation batch.

A family's `describe()` only writes its prompts as `Sample`s; `answer_samples` does the rest (processor +
`generate`), so every family answers in one left-padded batch with each image encoded once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsvlm_zoo.batch import Batch, batch_to
from rsvlm_zoo.data.collate import RegionCollator
from rsvlm_zoo.data.processor import RegionProcessor
from rsvlm_zoo.data.schema import Sample

ImageLike = Any  # PIL.Image.Image | np.ndarray | str | Path


def to_rgb_array(image: ImageLike) -> np.ndarray:
    """PIL image, HxWx3 uint8 array, or file path -> HxWx3 uint8 array.

    Raises:
        TypeError: for any other input.
    """
    if isinstance(image, (str, Path)):
        from rsvlm_zoo.data.images import load_image

        return load_image(image)
    if hasattr(image, "convert") and hasattr(image, "size"):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        image = image.cpu().numpy()
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return image
    raise TypeError(f"images must be PIL images, HxWx3 uint8 arrays or file paths, got {type(image).__name__}")


def to_bool_mask(mask: Any, height: int, width: int, where: str) -> np.ndarray:
    """Numpy/torch mask -> boolean (height, width) array.

    Raises:
        ValueError: when the mask's size is not the image's, or the mask is empty.
    """
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask).astype(bool)
    if mask.shape != (height, width):
        raise ValueError(f"{where}: mask is {mask.shape[::-1]} (w, h) but the image is {(width, height)}")
    if not mask.any():
        raise ValueError(f"{where}: mask is empty; every region needs at least one pixel")
    return mask


def generation_batch(
    processor: RegionProcessor, samples: list[Sample], images: list[np.ndarray], sample_image: list[int]
) -> Batch:
    """Process prompt-only samples and collate them left-padded, each unique image encoded once.

    Args:
        processor: The model's processor.
        samples: One prompt per sequence.
        images: The unique images.
        sample_image: For each sample, the index of its image in `images`.
    """
    items = [
        processor(s, images[i], generation=True, with_pixels=False) for s, i in zip(samples, sample_image, strict=True)
    ]
    batch = RegionCollator(processor.spec.tokenizer.pad_token_id, padding_side="left")(items)
    batch["pixel_values"] = torch.stack([processor.image_tensor(im) for im in images])
    batch["sequence_image_index"] = torch.tensor(sample_image, dtype=torch.long)
    return batch


def answer_samples(
    model: Any,
    samples: list[Sample],
    images: list[np.ndarray],
    sample_image: list[int],
    max_new_tokens: int | None = None,
    **generate_kwargs: Any,
) -> list[str]:
    """One answer per sample: the model's processor, one generation batch on the model's device, `generate`.

    Args:
        model: A region VLM (`input_spec()`, `device`, `generate(batch, ...)`).
        samples: Prompt-only samples, one per answer wanted.
        images: The unique images (HxWx3 uint8).
        sample_image: For each sample, the index of its image in `images`.
        max_new_tokens: Generation length (None: the model's).
        **generate_kwargs: Passed to generation (greedy by default).
    """
    if not samples:
        return []
    processor = RegionProcessor(model.input_spec(), max_length=1 << 30)
    batch = batch_to(generation_batch(processor, samples, images, sample_image), model.device)
    return model.generate(batch, max_new_tokens=max_new_tokens, **generate_kwargs)


def group_by_image(answers: list[str], sample_image: list[int], num_images: int) -> list[list[str]]:
    """Answers regrouped per image, in sample order."""
    grouped: list[list[str]] = [[] for _ in range(num_images)]
    for owner, answer in zip(sample_image, answers, strict=True):
        grouped[owner].append(answer)
    return grouped


def check_box(box: Any, width: int, height: int, where: str) -> tuple[float, float, float, float]:
    """A `describe()` box as four floats clipped to the image.

    Raises:
        ValueError: naming `where`, for a box without area or one outside the image.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"{where}: box {box} has no area; boxes are (x1, y1, x2, y2) pixels with x2 > x1, y2 > y1")
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        raise ValueError(f"{where}: box {box} lies outside the {width}x{height} image")
    return (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
