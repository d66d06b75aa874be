"""Metric objects for generated answers, by name, for validation and test runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _caption_suite() -> Any:
    from rsvlm_zoo.metrics import CaptionMetrics

    return CaptionMetrics()


def _factories() -> dict[str, Callable[[], Any]]:
    from rsvlm_zoo.metrics import BLEU, METEOR, ROUGEL, CIDEr, ExactMatch, SemanticIoU, SemanticSimilarity

    return {
        "exact_match": ExactMatch,
        "bleu": BLEU,
        "meteor": METEOR,
        "rouge_l": ROUGEL,
        "cider": CIDEr,
        "caption": _caption_suite,  # the whole coco-caption suite in one pass: Bleu_1..4, METEOR, ROUGE_L, CIDEr
        "semantic_similarity": SemanticSimilarity,
        "semantic_iou": SemanticIoU,
    }


KNOWN = ("exact_match", "bleu", "meteor", "rouge_l", "cider", "caption", "semantic_similarity", "semantic_iou")


def build_answer_metrics(names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Fresh metric objects keyed by the name they are logged under.

    `caption` computes a dict of scores (logged as `Bleu_1`, ..., `CIDEr`); the others one number each.

    Raises:
        ValueError: naming the known metric names.
    """
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise ValueError(f"unknown eval metric(s) {unknown}; known: {', '.join(KNOWN)}")
    factories = _factories()
    return {name: factories[name]() for name in names}
