"""A torchmetrics Metric whose states are lists of strings, gathered across ranks with `all_gather_object`."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torchmetrics import Metric


def check_caption_inputs(preds: Sequence[str], target: Sequence[Sequence[str] | str]) -> list[list[str]]:
    """Validate one batch; returns the references as lists (a bare string is one reference).

    Raises:
        ValueError: on a length mismatch, a non-string or a sample without references.
    """
    if isinstance(preds, str):
        raise ValueError("preds must be a list of strings, one per sample, not a single string")
    if len(preds) != len(target):
        raise ValueError(f"{len(preds)} predictions but {len(target)} reference lists")
    refs = []
    for i, (pred, sample_refs) in enumerate(zip(preds, target, strict=True)):
        if not isinstance(pred, str):
            raise ValueError(f"prediction {i} is {type(pred).__name__}, expected str")
        sample = [sample_refs] if isinstance(sample_refs, str) else list(sample_refs)
        if not sample:
            raise ValueError(f"sample {i} has no reference")
        if not all(isinstance(r, str) for r in sample):
            raise ValueError(f"references of sample {i} must all be strings")
        refs.append(sample)
    return refs


_INSTANCES = itertools.count()


def _dist_group_size(group: Any) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


class CaptionStateMetric(Metric):
    """Base of the caption metrics: keeps every prediction and its references as Python strings.

    States `preds` (list of str) and `target` (list of lists of str) are plain lists with
    `dist_reduce_fx=None`; `reset()` clears them. Under DDP, `compute()` gathers them from every rank with
    `torch.distributed.all_gather_object` (uneven shards are fine), then rank 0 of the group scores the whole
    corpus and broadcasts the result, so only one rank runs the Java scorers.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    _string_states = ("preds", "target")

    preds: list[str]
    target: list[list[str]]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # First state, distinct per instance: `MetricCollection` compares states to build compute groups and
        # cannot compare strings; this tensor makes it stop (not grouped) before reaching them.
        self.add_state("instance_key", default=torch.tensor(next(_INSTANCES)), dist_reduce_fx="max")
        self.add_state("preds", default=[], dist_reduce_fx=None)
        self.add_state("target", default=[], dist_reduce_fx=None)

    def update(self, preds: Sequence[str], target: Sequence[Sequence[str] | str]) -> None:
        """Add a batch: one prediction and a list of references per sample."""
        refs = check_caption_inputs(preds, target)
        self.preds.extend(preds)
        self.target.extend(refs)
        self._on_update()

    def __hash__(self) -> int:
        """Identity hash (the default one hashes the states, and reference lists are unhashable)."""
        return hash((type(self).__name__, id(self)))

    def _on_update(self) -> None:
        """Hook run after each update (e.g. to start a JVM early)."""

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = ()) -> torch.nn.Module:  # type: ignore[override]
        """Move/cast tensor states only; the string states are left alone."""
        return super()._apply(fn, exclude_state=(*exclude_state, *self._string_states))

    def _sync_dist(self, dist_sync_fn: Callable | None = None, process_group: Any | None = None) -> None:
        """Gather the string states of every rank (rank order) with `all_gather_object`."""
        group = process_group or self.process_group
        world_size = dist.get_world_size(group)
        for name in self._string_states:
            gathered: list[Any] = [None] * world_size
            dist.all_gather_object(gathered, getattr(self, name), group=group)
            setattr(self, name, [item for part in gathered for item in part])

    def _is_rank_zero(self) -> bool:
        if _dist_group_size(self.process_group) == 1:
            return True
        return dist.get_rank(self.process_group) == 0

    def _compute_once(self, fn: Callable[[], dict[str, float]]) -> dict[str, float]:
        """Run `fn` on rank 0 and broadcast its result when the states were gathered, else run it here."""
        group = self.process_group
        if not (getattr(self, "_is_synced", False) and _dist_group_size(group) > 1):
            return fn()
        src = 0 if group is None else dist.get_global_rank(group, 0)
        payload: list[Any] = [None]
        error: BaseException | None = None
        if dist.get_rank(group) == 0:
            try:
                payload = [("ok", fn())]
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the other ranks are told
                error = exc
                payload = [("error", f"{type(exc).__name__}: {exc}")]
        dist.broadcast_object_list(payload, src=src, group=group)
        if error is not None:
            raise error
        status, value = payload[0]
        if status != "ok":
            raise RuntimeError(f"caption metric failed on rank 0: {value}")
        return value


def as_tensors(scores: dict[str, float]) -> dict[str, torch.Tensor]:
    """Float64 scalar tensors (full precision for exactness checks; loggers cast as they need)."""
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in scores.items()}
