"""Instruction builders: annotated samples -> region tasks in Osprey/Aquila conversation form (text only)."""

from __future__ import annotations

import copy
import random

from rsvlm_zoo.data.schema import DataFormatError, Sample, Turn
from rsvlm_zoo.tokens import OVERVIEW, region_list

MASK = "<mask><pos>"
CATEGORY_QUESTION = "What is the category of {}? Using only one word or phrase."
SHORT_QUESTION = "Please give me a short description of {}."
DETAIL_QUESTION = "Can you provide me with a detailed description of {}?"


def _order(sample: Sample, shuffle: bool, seed: int | None, max_regions: int | None) -> list[int]:
    if not sample.regions:
        raise DataFormatError(f"{sample.where()}: no regions to ask about; region tasks need at least one")
    order = list(range(len(sample.regions)))
    if shuffle:
        random.Random(f"{seed}:{sample.sample_id}").shuffle(order)
    return order[:max_regions] if max_regions else order


def _answers(sample: Sample, order: list[int], attr: str) -> list[str]:
    out = []
    for k in order:
        value = getattr(sample.regions[k], attr)
        if not value:
            raise DataFormatError(
                f"{sample.where()}: region {k} has no {attr}; the task needs one for each region asked about"
            )
        out.append(str(value))
    return out


def _with(sample: Sample, turns: list[Turn], refs: list[int] | None) -> Sample:
    """A shallow copy with a new conversation (the image size is not read)."""
    out = copy.copy(sample)
    out.regions = list(sample.regions)
    out.conversation = turns
    out.region_refs = refs
    out.meta = dict(sample.meta)
    return out


def _identity_or(refs: list[int], n: int) -> list[int] | None:
    return None if refs == list(range(n)) else refs


def category_task(
    sample: Sample,
    per_region: bool = False,
    shuffle: bool = False,
    seed: int | None = 0,
    max_regions: int | None = None,
) -> Sample:
    """Ask for each region's category (answer: the class name).

    Args:
        sample: Sample with categorised regions.
        per_region: False: the first question lists all regions ("There are N part regions in the
            picture: region1<mask><pos>, ...") and each question names one ("What is the category of
            region1? ..."). True: each question carries the region itself ("What is the category of
            <mask><pos>? Using only one word or phrase.").
        shuffle: Ask in a random (seeded per sample) order.
        seed: Seed for `shuffle`.
        max_regions: Ask about at most this many regions.

    Raises:
        DataFormatError: no regions, or a region without category.
    """
    order = _order(sample, shuffle, seed, max_regions)
    answers = _answers(sample, order, "category")
    turns: list[Turn] = []
    if per_region:
        for j, answer in enumerate(answers):
            turns += [
                Turn("human", (OVERVIEW if j == 0 else "") + CATEGORY_QUESTION.format(MASK)),
                Turn("gpt", answer),
            ]
        return _with(sample, turns, _identity_or(order, len(sample.regions)))
    head = OVERVIEW + region_list(len(sample.regions))
    for j, (k, answer) in enumerate(zip(order, answers, strict=True)):
        question = (head if j == 0 else "") + CATEGORY_QUESTION.format(f"region{k + 1}")
        turns += [Turn("human", question), Turn("gpt", answer)]
    return _with(sample, turns, None)


def region_caption_task(
    sample: Sample, shuffle: bool = False, seed: int | None = 0, max_regions: int | None = None
) -> Sample:
    """Ask for a short description of each region ("Please give me a short description of <mask><pos>.").

    The answer is the region's `text`.

    Raises:
        DataFormatError: no regions, or a region without text.
    """
    order = _order(sample, shuffle, seed, max_regions)
    turns: list[Turn] = []
    for j, answer in enumerate(_answers(sample, order, "text")):
        turns += [
            Turn("human", (OVERVIEW if j == 0 else "") + SHORT_QUESTION.format(MASK)),
            Turn("gpt", answer),
        ]
    return _with(sample, turns, _identity_or(order, len(sample.regions)))


def detailed_description_task(
    sample: Sample, shuffle: bool = False, seed: int | None = 0, max_regions: int | None = None
) -> Sample:
    """Grounded detailed descriptions: all regions listed first, then each described in turn.

    The first question lists every region (`region1<mask><pos>, ...`); each question names the region
    again with its tokens ("Can you provide me with a detailed description of region2<mask><pos>?"),
    so `region_refs` is `[0..N-1] + asked order`. The answer is the region's `text`.

    Raises:
        DataFormatError: no regions, or a region without text.
    """
    order = _order(sample, shuffle, seed, max_regions)
    head = OVERVIEW + region_list(len(sample.regions))
    turns: list[Turn] = []
    for j, (k, answer) in enumerate(zip(order, _answers(sample, order, "text"), strict=True)):
        question = (head if j == 0 else "") + DETAIL_QUESTION.format(f"region{k + 1}{MASK}")
        turns += [Turn("human", question), Turn("gpt", answer)]
    return _with(sample, turns, list(range(len(sample.regions))) + order)


TASKS = {
    "category": category_task,
    "region_caption": region_caption_task,
    "detailed_description": detailed_description_task,
}
