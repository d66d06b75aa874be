"""Corpus BLEU-1..n exactly as coco-caption's `BleuScorer` with `option='closest'`."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rsvlm_zoo.metrics.ngrams import Cooked

_SMALL = 1e-9
_TINY = 1e-15


def bleu_sample_stats(hyp: Cooked, refs: Sequence[Cooked], n: int = 4) -> list[int]:
    """Integer sufficient statistics of one sample: [testlen, reflen, guess_1..n, correct_1..n].

    `reflen` is the reference length closest to the hypothesis length (shorter one on ties), as
    coco-caption's `cook_test(..., eff='closest')`.
    """
    testlen, hyp_counts = hyp
    reflen = min((abs(length - testlen), length) for length, _ in refs)[1]
    stats = [testlen, reflen]
    stats.extend(max(0, testlen - k) for k in range(n))
    for k in range(n):
        counts = hyp_counts[k]
        if not counts:
            stats.append(0)
            continue
        if len(refs) == 1:
            maxref = refs[0][1][k]
        else:
            maxref = {}
            for _, ref_counts in refs:
                for gram, count in ref_counts[k].items():
                    if count > maxref.get(gram, 0):
                        maxref[gram] = count
        stats.append(sum(min(maxref.get(gram, 0), count) for gram, count in counts.items()))
    return stats


def corpus_bleu(sample_stats: Sequence[Sequence[int]], n: int = 4) -> list[float]:
    """Corpus BLEU-1..n from summed sample statistics (the order of samples does not matter).

    Args:
        sample_stats: `bleu_sample_stats` of every sample.
        n: highest n-gram order.

    Returns:
        [BLEU-1, ..., BLEU-n], coco-caption's numbers bit for bit.
    """
    totals = [0] * (2 + 2 * n)
    for stats in sample_stats:
        for i, value in enumerate(stats):
            totals[i] += value
    testlen, reflen = totals[0], totals[1]
    guess, correct = totals[2 : 2 + n], totals[2 + n :]
    bleus = []
    bleu = 1.0
    for k in range(n):
        bleu *= float(correct[k] + _TINY) / (guess[k] + _SMALL)
        bleus.append(bleu ** (1.0 / (k + 1)))
    ratio = (testlen + _TINY) / (reflen + _SMALL)
    if ratio < 1:
        for k in range(n):
            bleus[k] *= math.exp(1 - 1 / ratio)
    return bleus
