"""Region-task scores of matched answers (`rsvlm eval --task`): grounding, referring classification, captions.

Grounding and referring-classification scores are means of per-sample values, so their 95% bootstrap intervals
(`resamples` > 0, seeded) are exact; the caption suite's corpus-level scores have none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rsvlm_zoo.data.box_codec import ANSWER_FORMATS, answer_box
from rsvlm_zoo.evaluation.region_tasks import CI_SUFFIX, Matched

_BOOTSTRAP_CHUNK = 256  # resamples drawn and scored at once


def percentile_interval(values: np.ndarray) -> list[float]:
    """The 95% percentile interval [2.5th, 97.5th percentile] of bootstrap values (linear interpolation)."""
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def bootstrap(
    n: int, resamples: int, seed: int, statistics: Callable[[np.ndarray], dict[str, np.ndarray]]
) -> dict[str, list[float]]:
    """95% percentile intervals of `statistics` over `resamples` resamples of the n samples, with replacement.

    Args:
        n: Number of samples.
        resamples: Number of bootstrap resamples.
        seed: Seed of the numpy generator (`numpy.random.default_rng`): the same seed gives the same intervals.
        statistics: Maps a (B, n) array of sample indices to `{name: (B,) values}`.

    Returns:
        `{name: [low, high]}`.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, resamples, _BOOTSTRAP_CHUNK):
        idx = rng.integers(0, n, size=(min(_BOOTSTRAP_CHUNK, resamples - start), n))
        for name, values in statistics(idx).items():
            parts.setdefault(name, []).append(values)
    return {name: percentile_interval(np.concatenate(chunks)) for name, chunks in parts.items()}


def _with_intervals(scores: dict[str, Any], intervals: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in scores.items():
        out[name] = value
        if name in intervals:
            out[name + CI_SUFFIX] = intervals[name]
    return out


def score_grounding(
    matched: Matched, box_format: str, resamples: int = 0, seed: int = 0
) -> tuple[dict[str, Any], list[tuple[float, ...] | None]]:
    """Grounding scores of the answers, the first box of each parsed with `box_format`, scored in pixels.

    A missing prediction or an answer whose first box does not parse (or is out of range or inverted) is a miss:
    IoU 0 and counted in `unparsed` (a count of samples). With `resamples`, each of acc@t, miou and ciou gets a
    95% percentile interval under `<name>_ci95`, from per-sample IoUs, intersections and unions (exact).

    Returns:
        The scores and the parsed predicted boxes (None for a miss).
    """
    from rsvlm_zoo.metrics.grounding import GroundingAccuracy

    if box_format not in ANSWER_FORMATS:
        raise ValueError(f"unknown box format {box_format!r}; known: {', '.join(ANSWER_FORMATS)}")
    preds: list[tuple[float, ...] | None] = []
    targets: list[list[float]] = []
    for ref, answer in zip(matched.references, matched.answers, strict=True):
        width, height = float(ref["width"]), float(ref["height"])
        preds.append(None if answer is None else answer_box(answer, box_format, width, height))
        box = [float(v) for v in ref["box"]]
        targets.append(box + [float(ref["angle"])] if ref.get("angle") is not None else box)
    metric = GroundingAccuracy()
    metric.update(preds, targets)
    computed = metric.compute()
    scores: dict[str, Any] = {k: float(v) for k, v in computed.items() if k != "unparsed"}
    scores["unparsed"] = int(computed["unparsed"])
    if resamples:
        ious, inters, unions = (t.cpu().numpy() for t in metric.per_sample())

        def statistics(idx: np.ndarray) -> dict[str, np.ndarray]:
            iou = ious[idx]
            stats = {f"acc@{t:g}": (iou >= t).mean(axis=1) for t in metric.thresholds}
            stats["miou"] = iou.mean(axis=1)
            total = unions[idx].sum(axis=1)
            stats["ciou"] = np.where(total > 0, inters[idx].sum(axis=1) / np.where(total > 0, total, 1.0), 0.0)
            return stats

        scores = _with_intervals(scores, bootstrap(len(ious), resamples, seed, statistics))
    return scores, preds


def score_refcls(matched: Matched, resamples: int = 0, seed: int = 0, batch_size: int = 64) -> dict[str, Any]:
    """Osprey's referring-object classification scores: `semantic_similarity` and `semantic_iou`.

    Both are means of per-sample scores (each sample's best reference), so the bootstrap intervals (with
    `resamples`) are exact. A missing prediction is scored as an empty answer.

    Raises:
        ModuleNotFoundError: the sentence embedder of the optional `semantic` extra is not installed.
    """
    from rsvlm_zoo.metrics.semantic import SemanticIoU, SemanticSimilarity

    similarity, iou = SemanticSimilarity(batch_size=batch_size), SemanticIoU()
    answers = [a if a is not None else "" for a in matched.answers]
    target = [list(r["references"]) for r in matched.references]
    similarity.update(answers, target)
    iou.update(answers, target)
    scores: dict[str, Any] = {"semantic_similarity": float(similarity.compute()), "semantic_iou": float(iou.compute())}
    if resamples:
        per = {
            "semantic_similarity": torch.cat(similarity.scores).numpy(),
            "semantic_iou": torch.cat(iou.scores).numpy(),
        }
        intervals = bootstrap(
            len(answers), resamples, seed, lambda idx: {k: v[idx].mean(axis=1) for k, v in per.items()}
        )
        scores = _with_intervals(scores, intervals)
    return scores


def score_captions(matched: Matched, **caption_options: Any) -> dict[str, Any]:
    """The coco-caption suite (`CaptionMetrics(**caption_options)`) of the answers; a missing one is empty text.

    Undefined scores (NaN, infinite) are None. There is no bootstrap: BLEU, METEOR and CIDEr are corpus-level
    scores (n-gram counts, alignment statistics, document frequencies pooled over all samples), so an exact
    interval would rescore the whole suite once per resample.
    """
    from rsvlm_zoo.metrics.caption import CaptionMetrics

    metric = CaptionMetrics(**caption_options)
    try:
        metric.update(
            [a if a is not None else "" for a in matched.answers], [r["references"] for r in matched.references]
        )
        out: dict[str, Any] = {}
        for name, value in metric.compute().items():
            number = float(value)
            out[name] = number if math.isfinite(number) else None
        return out
    finally:
        metric.close()
