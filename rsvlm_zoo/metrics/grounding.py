"""Grounding metrics: accuracy at IoU thresholds, mean IoU and cumulative IoU of predicted boxes, in pixel space.

A prediction is a box or `None` (an answer with no box that could be parsed): `None` counts as a miss (IoU 0) and
is also counted on its own (`unparsed`), never dropped. States are concatenated across processes, and the means
and sums are taken exactly (`math.fsum`), so the scores under DDP equal those of one process.

Boxes are in the image's pixels, either horizontal, `(x1, y1, x2, y2)`, or rotated, `(x1, y1, x2, y2, angle)`:

- Rotated convention (GeoChat's `{<x1><y1><x2><y2>|<θ>}`, and the references `rsvlm_zoo.data.references`
  writes): the horizontal box `(x1, y1, x2, y2)` turned about its centre by `angle` degrees. Pixel coordinates
  run right (x) and down (y); a positive angle turns the x axis toward the y axis, which is clockwise as the
  image is seen on screen: a corner at offset (dx, dy) from the centre moves to
  `(cos θ dx - sin θ dy, sin θ dx + cos θ dy)`. This is the corner formula of GeoChat's
  `bbox_and_angle_to_polygon` (geochat_demo.py); the demo's drawing helper, which goes through
  `cv2.getRotationMatrix2D`, turns the other way, so boxes written for that sign are scored here by negating
  their angles. The sign matters: two boxes offset diagonally overlap differently when both angles flip. An
  angle of 0 (or any multiple of 180) is the horizontal box.
- Horizontal pairs (both angles a multiple of 180 degrees, or no angle) take the closed-form path; any other pair
  is scored by the exact area of the intersection of the two convex quadrilaterals (`rotated_box_iou_pairs`).
- A box with x2 < x1 or y2 < y1 is empty (area 0), on both paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

Box = Sequence[float]
THRESHOLDS = (0.25, 0.5, 0.75)
# Pairs scored at once by the polygon path: bounds its temporary memory (a few MB per chunk).
_CHUNK = 4096
# Tolerance of the polygon path, in units of the pair's own size (coordinates are rescaled to about 1).
_EPS = 1e-9


def _safe_iou(inter: torch.Tensor, union: torch.Tensor) -> torch.Tensor:
    """`inter / union`, 0 where the union is empty."""
    tiny = torch.finfo(union.dtype).tiny
    return torch.where(union > 0, inter / union.clamp(min=tiny), torch.zeros_like(union))


def box_areas(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of (N, 4) or (N, 5) boxes (a rotation does not change the area; inverted boxes have area 0)."""
    return (boxes[:, 2:4] - boxes[:, 0:2]).clamp(min=0).prod(dim=1)


def box_iou_pairs(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per pair of (N, 4) x1, y1, x2, y2 boxes: intersection, union and IoU (0 where the union is empty)."""
    lt = torch.maximum(pred[:, :2], target[:, :2])
    rb = torch.minimum(pred[:, 2:4], target[:, 2:4])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    union = box_areas(pred) + box_areas(target) - inter
    return inter, union, _safe_iou(inter, union)


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """The (N, 4, 2) corners of (N, 5) rotated boxes, in the order top-left, top-right, bottom-right, bottom-left.

    The order is that of the unrotated box; turning keeps it, so every corner list has the same orientation.
    """
    centre = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
    half = np.clip(boxes[:, 2:4] - boxes[:, 0:2], 0, None) / 2
    signs = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    offsets = signs[None] * half[:, None, :]  # (N, 4, 2): dx, dy before turning
    theta = np.deg2rad(boxes[:, 4])[:, None]
    cos, sin = np.cos(theta), np.sin(theta)
    dx, dy = offsets[..., 0], offsets[..., 1]
    return centre[:, None, :] + np.stack((cos * dx - sin * dy, sin * dx + cos * dy), axis=-1)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The z component of the cross product of (..., 2) vectors."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _last4(op: np.ufunc, a: np.ndarray) -> np.ndarray:
    """`op` folded over a last axis of length 4 (elementwise on slices: far faster than a reduction this short)."""
    return op(op(a[..., 0], a[..., 1]), op(a[..., 2], a[..., 3]))


def _boundary_inside(a: np.ndarray, b: np.ndarray, owns_shared_edges: bool) -> np.ndarray:
    """Per pair: the line integral (x dy - y dx) / 2 along the parts of `a`'s edges that lie inside `b`.

    Each edge `a_i + t d` (0 <= t <= 1) is clipped to `b`'s four half-planes (Cyrus-Beck); the kept piece
    [t0, t1] adds `cross(a_i, d) (t1 - t0) / 2`. An edge lying on one of `b`'s edges and running the same way
    belongs to the intersection's boundary once: it is kept when `owns_shared_edges`, dropped otherwise. One
    running the opposite way (the boxes touch from outside) is kept on both sides and cancels.
    """
    d = np.roll(a, -1, axis=1) - a  # (N, 4, 2) edges of a
    e = np.roll(b, -1, axis=1) - b  # (N, 4, 2) edges of b
    # Side of b's edge j for the point a_i + t d_i: c0 + t c1 (>= 0 inside), shapes (N, 4 edges of a, 4 of b).
    c0 = _cross(e[:, None], a[:, :, None] - b[:, None])
    c1 = _cross(e[:, None], d[:, :, None])
    parallel = np.abs(c1) <= _EPS
    ratio = -c0 / np.where(parallel, 1.0, c1)
    t0 = np.maximum(_last4(np.maximum, np.where(c1 > _EPS, ratio, -np.inf)), 0.0)
    t1 = np.minimum(_last4(np.minimum, np.where(c1 < -_EPS, ratio, np.inf)), 1.0)
    if owns_shared_edges:
        side_ok = c0 >= -_EPS
    else:
        opposite = e[:, None, :, 0] * d[:, :, None, 0] + e[:, None, :, 1] * d[:, :, None, 1] < 0
        side_ok = (c0 > _EPS) | ((c0 >= -_EPS) & opposite)
    feasible = _last4(np.logical_and, np.where(parallel, side_ok, True))
    kept = np.maximum(t1 - t0, 0.0) * feasible
    return _last4(np.add, _cross(a, d) * kept) / 2


def convex_quad_intersection_area(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Area of the intersection of each pair of convex quadrilaterals (N, 4, 2), corners in the same orientation.

    By Green's theorem the area is the line integral of (x dy - y dx) / 2 around the intersection's boundary,
    which is made of the parts of `p`'s edges inside `q` and of `q`'s edges inside `p`: exact up to rounding, no
    vertex sorting. Coordinates should be of order 1 (the tolerances are absolute); `rotated_box_iou_pairs`
    rescales each pair before calling.
    """
    return np.abs(_boundary_inside(p, q, True) + _boundary_inside(q, p, False))


def rotated_box_iou_pairs(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per pair of (N, 5) rotated boxes (x1, y1, x2, y2, angle in degrees): intersection, union and IoU.

    The angle convention is the module's (GeoChat's). Exact convex-polygon intersection, vectorised in numpy
    (float64, in chunks); each pair is moved to its target's centre and scaled to its size first, so the
    tolerances are relative. The results are float64 tensors on `pred`'s device.
    """
    boxes_p = pred.detach().to("cpu", torch.float64).numpy()
    boxes_t = target.detach().to("cpu", torch.float64).numpy()
    area_p = np.prod(np.clip(boxes_p[:, 2:4] - boxes_p[:, 0:2], 0, None), axis=1)
    area_t = np.prod(np.clip(boxes_t[:, 2:4] - boxes_t[:, 0:2], 0, None), axis=1)
    inter = np.zeros(len(boxes_p))
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in range(0, len(boxes_p), _CHUNK):
            sl = slice(start, start + _CHUNK)
            p, q = box_corners(boxes_p[sl]), box_corners(boxes_t[sl])
            origin = (q[:, 0:1] + q[:, 2:3]) / 2  # the target's centre
            reach = np.abs(np.concatenate((p, q), axis=1) - origin).reshape(len(p), 16)
            scale = np.maximum(reach.max(axis=1), np.finfo(np.float64).tiny)[:, None, None]
            part = convex_quad_intersection_area((p - origin) / scale, (q - origin) / scale) * scale[:, 0, 0] ** 2
            part[(area_p[sl] <= 0) | (area_t[sl] <= 0)] = 0.0
            inter[sl] = np.minimum(part, np.minimum(area_p[sl], area_t[sl]))
    union = area_p + area_t - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return tuple(torch.from_numpy(a).to(pred.device) for a in (inter, union, iou))  # type: ignore[return-value]


def _is_horizontal(angles: torch.Tensor) -> torch.Tensor:
    return torch.remainder(angles, 180.0) == 0


def pair_ious(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Intersection, union and IoU per pair of (N, 4) or (N, 5) boxes; horizontal pairs take the closed form."""
    if pred.shape[1] == 4 and target.shape[1] == 4:
        return box_iou_pairs(pred, target)
    pad = lambda b: b if b.shape[1] == 5 else torch.cat((b, b.new_zeros(b.shape[0], 1)), dim=1)  # noqa: E731
    pred, target = pad(pred), pad(target)
    turned = ~(_is_horizontal(pred[:, 4]) & _is_horizontal(target[:, 4]))
    if bool(turned.all()):
        return rotated_box_iou_pairs(pred, target)
    if not bool(turned.any()):
        return box_iou_pairs(pred, target)
    out = [pred.new_empty(pred.shape[0]) for _ in range(3)]
    for mask, score in ((turned, rotated_box_iou_pairs), (~turned, box_iou_pairs)):
        for whole, part in zip(out, score(pred[mask], target[mask]), strict=True):
            whole[mask] = part.to(whole.dtype)
    return out[0], out[1], out[2]


def _as_tensor(boxes: Sequence[Box], device: torch.device) -> torch.Tensor:
    """(N, 4) when every box is horizontal, else (N, 5) with angle 0 for the four-number boxes.

    Raises:
        ValueError: a box that is not four or five finite numbers.
    """
    try:  # one array in one step when every box has the same length (the usual case, and the fast one)
        array = np.asarray(boxes)
    except ValueError:  # boxes of four and five numbers mixed
        array = None
    if array is None or array.dtype == object:
        rows = [list(b) if isinstance(b, (Sequence, np.ndarray, torch.Tensor)) else [] for b in boxes]
        width = 5 if any(len(b) == 5 for b in rows) else 4
        rows = [b + [0.0] * (width - len(b)) if len(b) in (4, 5) else [] for b in rows]
        try:
            array = np.asarray(rows)
        except ValueError:
            array = None
    ok = (
        array is not None
        and array.ndim == 2
        and array.shape[1] in (4, 5)
        and array.dtype.kind in "iuf"
        and np.isfinite(array).all()
    )
    if not ok:
        raise ValueError(
            "boxes must be four finite numbers (x1, y1, x2, y2) in pixels, or five with the angle in degrees last"
        )
    return torch.from_numpy(array.astype(np.float64)).to(device)


class GroundingAccuracy(Metric):
    """Acc@0.25/0.5/0.75, mean IoU (`miou`), cumulative IoU (`ciou`: summed intersections over summed unions).

    Boxes are horizontal `(x1, y1, x2, y2)` or rotated `(x1, y1, x2, y2, angle_degrees)` in pixels (the module
    docstring gives the angle convention); the two kinds may be mixed in one batch. `unparsed` is the number of
    `None` predictions (a count, returned as a float tensor).

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
            ValueError: when the lengths differ or a box is not four or five finite numbers.
        """
        if len(preds) != len(target):
            raise ValueError(f"{len(preds)} predicted boxes but {len(target)} reference boxes")
        if not len(target):
            return
        none = [p is None for p in preds]
        missing = torch.tensor(none, device=self.device)
        true = _as_tensor(target, self.device)
        filled = [t if gap else p for p, t, gap in zip(preds, target, none, strict=True)] if any(none) else preds
        pred = _as_tensor(filled, self.device)  # type: ignore[arg-type]
        inter, union, iou = pair_ious(pred, true)
        inter, iou = inter.masked_fill(missing, 0.0), iou.masked_fill(missing, 0.0)
        # A miss adds nothing to the intersections but the reference's area to the unions.
        union = torch.where(missing, box_areas(true), union)
        self.ious.append(iou)
        self.inters.append(inter)
        self.unions.append(union)
        self.unparsed += missing.sum()

    def per_sample(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The (IoU, intersection, union) of every pair seen so far, in update order (all ranks once synced)."""
        cat = lambda s: dim_zero_cat(s) if len(s) else torch.zeros(0, dtype=torch.float64)  # noqa: E731
        return cat(self.ious), cat(self.inters), cat(self.unions)

    def compute(self) -> dict[str, torch.Tensor]:
        """The scores (zeros when nothing was scored)."""
        ious, inters, unions = self.per_sample()
        return scores_from_pairs(ious, inters, unions, self.unparsed.clone(), self.thresholds)


def scores_from_pairs(
    ious: torch.Tensor,
    inters: torch.Tensor,
    unions: torch.Tensor,
    unparsed: torch.Tensor | float = 0.0,
    thresholds: Sequence[float] = THRESHOLDS,
) -> dict[str, torch.Tensor]:
    """Acc@t, `miou`, `ciou` and `unparsed` from per-pair IoUs, intersections and unions (sums taken exactly)."""
    n = ious.numel()
    f64 = lambda v: torch.tensor(float(v), dtype=torch.float64)  # noqa: E731
    out = {f"acc@{t:g}": f64(int((ious >= t).sum()) / n if n else 0.0) for t in thresholds}
    out["miou"] = f64(math.fsum(ious.tolist()) / n if n else 0.0)
    total_union = math.fsum(unions.tolist())
    out["ciou"] = f64(math.fsum(inters.tolist()) / total_union if total_union > 0 else 0.0)
    out["unparsed"] = unparsed if torch.is_tensor(unparsed) else f64(unparsed)
    return out
