"""ROUGE-L (F-measure, beta 1.2, best precision and recall over references) as coco-caption's `Rouge`."""

from __future__ import annotations

import math
from collections.abc import Sequence

BETA = 1.2


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (bit-parallel, Hyyrö 2004)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict[str, int] = {}
    for i, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full
    for token in a:
        m = masks.get(token)
        if m:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def rouge_l(hyp: str, refs: Sequence[str], beta: float = BETA) -> float:
    """ROUGE-L of one tokenised hypothesis against its tokenised references.

    Tokens are split on single spaces, as coco-caption does (an empty string is one empty token).
    """
    token_c = hyp.split(" ")
    prec_max = 0.0
    rec_max = 0.0
    for ref in refs:
        token_r = ref.split(" ")
        lcs = lcs_length(token_r, token_c)
        prec_max = max(prec_max, lcs / float(len(token_c)))
        rec_max = max(rec_max, lcs / float(len(token_r)))
    if prec_max != 0 and rec_max != 0:
        return ((1 + beta**2) * prec_max * rec_max) / float(rec_max + beta**2 * prec_max)
    return 0.0


def corpus_rouge_l(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> tuple[float, list[float]]:
    """Mean ROUGE-L over samples and the per-sample scores."""
    scores = [rouge_l(h, r) for h, r in zip(hyps, refs, strict=True)]
    return (math.fsum(scores) / len(scores) if scores else 0.0), scores
