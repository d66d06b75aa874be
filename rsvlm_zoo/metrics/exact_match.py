"""Exact match of generated answers, after light normalisation."""

from __future__ import annotations

import torch
from torchmetrics import Metric


def normalize_answer(text: str) -> str:
    """Lower-case, collapse white space and drop a trailing full stop."""
    return " ".join(text.lower().replace(" .", ".").split()).rstrip(".").strip()


class ExactMatch(Metric):
    """Share of predictions equal to any of their references after `normalize_answer`.

    Example:
        >>> m = ExactMatch()
        >>> m.update(["A red car."], [["a red car"]])
        >>> float(m.compute())
        1.0
    """

    higher_is_better = True
    full_state_update = False
    is_differentiable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("hits", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, preds: list[str], target: list[list[str]]) -> None:
        """Count hits of one batch."""
        if len(preds) != len(target):
            raise ValueError(f"{len(preds)} predictions but {len(target)} reference lists")
        for pred, refs in zip(preds, target, strict=True):
            self.hits += float(normalize_answer(pred) in {normalize_answer(r) for r in refs})
        self.total += len(preds)

    def compute(self) -> torch.Tensor:
        """Exact-match rate (0 when nothing was scored)."""
        return self.hits / self.total.clamp(min=1)
