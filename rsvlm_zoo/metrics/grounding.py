"""Grounding metrics: accuracy at IoU thresholds, mean IoU and cumulative IoU of predicted boxes, in pixel space.

A prediction is a box or `None` (an answer with no box that could be parsed): `None` counts as a miss (IoU 0) and
is also counted on its own (`unparsed`), never dropped. Boxes are horizontal (x1, y1, x2, y2) in the image's
pixels; states are concatenated across processes, so the scores under DDP equal those of one process.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

Box = Sequence[float]
THRESHOLDS = (0.25, 0.5, 0.75)


def box_iou_pairs(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per pair of (N, 4) x1, y1, x2, y2 boxes: intersection, union and IoU (0 where the union is empty)."""
    lt = torch.maximum(pred[:, :2], target[:, :2])
    rb = torch.minimum(pred[:, 2:], target[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area = lambda b: (b[:, 2:] - b[:, :2]).clamp(min=0).prod(dim=1)  # noqa: E731
    union = area(pred) + area(target) - inter
    iou = torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(union))
    return inter, union, iou


class GroundingAccuracy(Metric):
    """Acc@0.25/0.5/0.75, mean IoU (`miou`), cumulative IoU (`ciou`: summed intersections over summed unions).

    Example:
        >>> m = GroundingAccuracy()
        >>> m.update([(0, 0, 10, 10), None], [(0, 0, 10, 20), (5, 5, 9, 9)])
        >>> {k: round(float(v), 3) for k, v in m.compute().items()}
        {'acc@0.25': 0.5, 'acc@0.5': 0.5, 'acc@0.75': 0.0, 'miou': 0.25, 'ciou': 0.463, 'unparsed': 1.0}
    """

    higher_is_better = True
    full_state_update = False
    is_differentiable = False

    def __init__(self, thresholds: Sequence[float] = THRESHOLDS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.add_state("ious", default=[], dist_reduce_fx="cat")
        self.add_state("inters", default=[], dist_reduce_fx="cat")
        self.add_state("unions", default=[], dist_reduce_fx="cat")
        self.add_state("unparsed", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Sequence[Box | None], target: Sequence[Box]) -> None:
        """Score one batch: `preds[i]` (a box or None) against `target[i]`.

        Raises:
            ValueError: when the lengths differ or a box is not four finite numbers.
        """
        if len(preds) != len(target):
            raise ValueError(f"{len(preds)} predicted boxes but {len(target)} reference boxes")
        if not len(target):
            return
        missing = torch.tensor([p is None for p in preds])
        boxes = [list(p) if p is not None else list(t) for p, t in zip(preds, target, strict=True)]
        pred = torch.tensor(boxes, dtype=torch.float64, device=self.device)
        true = torch.tensor([list(t) for t in target], dtype=torch.float64, device=self.device)
        if pred.shape[1:] != (4,) or true.shape[1:] != (4,) or not (pred.isfinite().all() and true.isfinite().all()):
            raise ValueError("boxes must be four finite numbers (x1, y1, x2, y2) in pixels")
        inter, union, iou = box_iou_pairs(pred, true)
        missing = missing.to(self.device)
        inter, iou = inter.masked_fill(missing, 0.0), iou.masked_fill(missing, 0.0)
        # A miss adds nothing to the intersections but the reference's area to the unions.
        union = torch.where(missing, (true[:, 2:] - true[:, :2]).clamp(min=0).prod(dim=1), union)
        self.ious.append(iou)
        self.inters.append(inter)
        self.unions.append(union)
        self.unparsed += missing.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        """The scores (zeros when nothing was scored)."""
        ious = dim_zero_cat(self.ious) if self.ious else torch.zeros(0, dtype=torch.float64)
        out = {
            f"acc@{t:g}": (ious >= t).double().mean() if ious.numel() else torch.tensor(0.0) for t in self.thresholds
        }
        out["miou"] = ious.mean() if ious.numel() else torch.tensor(0.0)
        unions = dim_zero_cat(self.unions).sum() if self.unions else torch.tensor(0.0)
        inters = dim_zero_cat(self.inters).sum() if self.inters else torch.tensor(0.0)
        out["ciou"] = inters / unions if unions > 0 else torch.tensor(0.0)
        out["unparsed"] = self.unparsed.clone()
        return out
