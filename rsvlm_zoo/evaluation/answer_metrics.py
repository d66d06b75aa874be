"""Metric objects for generated answers, by name, for validation and test runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _caption_suite() -> Any:
    from rsvlm_zoo.metrics import CaptionMetrics

    return CaptionMetrics()


def _grounding() -> Any:
    from rsvlm_zoo.data.box_codec import BoxCodec
    from rsvlm_zoo.metrics.grounding import GroundingAccuracy

    class TextGrounding(GroundingAccuracy):
        """Grounding scores of answers that write a box as text (GeoChat's `{<x1><y1><x2><y2>|<angle>}`, 0-100).

        The first box of each answer is scored against the first box of its reference; an answer without one is a
        miss, counted in `unparsed`. Boxes are compared on the 0-100 grid of both axes: IoU of horizontal boxes
        does not change when each axis is scaled, so it equals the IoU in the image's pixels.
        """

        codec = BoxCodec("grid100")

        def _first_box(self, text: str) -> tuple[float, float, float, float] | None:
            found = self.codec.find_all(text)
            return found[0].values if found else None

        def update(self, preds: list[str], target: list[list[str]]) -> None:  # type: ignore[override]
            refs = [self._first_box(r[0]) if r else None for r in target]
            if any(r is None for r in refs):
                bad = next(r for r, box in zip(target, refs, strict=True) if box is None)
                raise ValueError(f"grounding reference {str(bad)[:80]!r} holds no box written as {{<x1><y1><x2><y2>}}")
            super().update([self._first_box(p) for p in preds], refs)  # type: ignore[arg-type]

    return TextGrounding()


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
        "grounding": _grounding,  # acc@0.25/0.5/0.75, miou, ciou, unparsed of boxes written as text
    }


KNOWN = (
    "exact_match",
    "bleu",
    "meteor",
    "rouge_l",
    "cider",
    "caption",
    "semantic_similarity",
    "semantic_iou",
    "grounding",
)


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


def compute_scores(metrics: dict[str, Any]) -> dict[str, float]:
    """Every score of `metrics` as a flat dict: a metric computing a dict (`caption`) gives each of its entries."""
    scores: dict[str, float] = {}
    for key, metric in metrics.items():
        value = metric.compute()
        for name, score in value.items() if isinstance(value, dict) else [(key, value)]:
            scores[name] = float(score)
    return scores


def score_records(records: list[dict[str, Any]], metrics: Callable[[], dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Scores per evaluation set (`eval_set` of each record), as a test run's `metrics.json` holds them.

    Args:
        records: Records with `answer` and `references` (see `rsvlm_zoo.evaluation.records`).
        metrics: Builds fresh metric objects for one set (e.g. `lambda: build_answer_metrics(("exact_match",))`).
    """
    by_set: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_set.setdefault(str(record.get("eval_set") or "predictions"), []).append(record)
    results = {}
    for name, rows in by_set.items():
        built = metrics()
        try:
            for metric in built.values():
                metric.update([r["answer"] for r in rows], [list(r["references"]) for r in rows])
            results[name] = compute_scores(built)
        finally:
            for metric in built.values():
                if hasattr(metric, "close"):
                    metric.close()
    return results
