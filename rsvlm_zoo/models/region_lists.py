"""Osprey's region lists in `describe()` prompts: which regions each question lists, by a policy fitting the context.

Osprey asks about a region after listing the image's regions ("There are N part regions in the picture: region1
<mask><pos>, ..."). With many regions the full list outgrows the context, so a policy chooses what each question
lists: `all`, `chunks:K` (questions share one list per chunk), `nearest:K` (the K regions nearest the asked one),
`asked` (only the asked one) or `auto` (the whole list when it fits, else the largest even chunks that do).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rsvlm_zoo.models.shared_prefix import Question
from rsvlm_zoo.tokens import OVERVIEW, region_list, region_name

REGION_LIST_POLICIES = ("auto", "all", "chunks:K", "nearest:K", "asked")


def parse_region_list_policy(policy: str) -> tuple[str, int]:
    """`"chunks:64"` -> ("chunks", 64); `"all"` -> ("all", 0).

    Raises:
        ValueError: naming the accepted forms.
    """
    kind, _, number = str(policy).partition(":")
    if kind in ("auto", "all", "asked") and not number:
        return kind, 0
    if kind in ("chunks", "nearest") and number.isdigit() and int(number) > 0:
        return kind, int(number)
    raise ValueError(
        f"region_list_policy must be one of {', '.join(REGION_LIST_POLICIES)} (K a positive integer), got {policy!r}"
    )


def osprey_question(prompt: str, listed: int, asked: int) -> str:
    """Osprey's wording: the overview, the list of `listed` regions, then `prompt` about region `asked` (0-based)."""
    return OVERVIEW + region_list(listed) + prompt.format(region=region_name(asked))


def centroids(masks: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 2) mean (y, x) of every mask's pixels."""
    out = np.zeros((len(masks), 2))
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        out[i] = ys.mean(), xs.mean()
    return out


def region_list_questions(
    policy: str,
    prompt: str,
    masks: Sequence[np.ndarray],
    image: int,
    prompt_length: Any,
    budget: int | None,
) -> list[Question]:
    """The Osprey-style questions about every region of one image under a region-list policy.

    Args:
        policy: `auto`, `all`, `chunks:K`, `nearest:K` or `asked` (see `AquilaPlus`).
        prompt: Question with `{region}`.
        masks: The image's region masks (for `nearest:K` distances).
        image: Index of the image.
        prompt_length: `prompt_length(text, num_regions)` -> tokens of one whole prompt.
        budget: Most prompt tokens allowed (context minus the answer length); None: unlimited.

    Raises:
        ValueError: when a prompt of the chosen policy exceeds `budget`.
    """
    kind, k = parse_region_list_policy(policy)
    n = len(masks)
    if n == 0:
        return []

    def fits(listed: int) -> bool:
        return budget is None or prompt_length(osprey_question(prompt, listed, listed - 1), listed + 1) <= budget

    if kind == "auto":
        if fits(n):
            kind = "all"
        else:
            if not fits(1):
                raise ValueError(f"a one-region prompt exceeds the context budget of {budget} tokens")
            lo, hi = 1, n  # largest chunk that fits (prompt length grows with the listed count)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
            chunks = math.ceil(n / lo)
            kind, k = "chunks", math.ceil(n / chunks)  # even chunks of at most `lo`
    if kind == "all":
        kind, k = "chunks", n
    if kind == "chunks":
        k = min(k, n)
        if not fits(k):
            raise ValueError(
                f"region_list_policy={policy!r}: listing {k} regions needs more than the {budget} prompt tokens the "
                "context leaves; use 'auto' (chunks that fit) or a smaller 'chunks:K'"
            )
        questions = []
        for c, start in enumerate(range(0, n, k)):
            listed = list(range(start, min(n, start + k)))
            for pos, region in enumerate(listed):
                text = osprey_question(prompt, len(listed), pos)
                questions.append(Question(image, text, [*listed, region], group=c))
        return questions
    if kind == "asked":
        kind, k = "nearest", 1
    k = min(k, n)
    if not fits(k):
        raise ValueError(f"region_list_policy={policy!r}: listing {k} regions exceeds the {budget}-token budget")
    centres = centroids(masks)
    questions = []
    for region in range(n):
        dist = ((centres - centres[region]) ** 2).sum(1)
        dist[region] = -1.0  # the asked region is always listed
        listed = sorted(np.argsort(dist, kind="stable")[:k].tolist())
        text = osprey_question(prompt, len(listed), listed.index(region))
        questions.append(Question(image, text, [*listed, region]))
    return questions
