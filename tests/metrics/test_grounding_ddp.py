"""Grounding scores of rotated and horizontal boxes under DDP (2 CPU processes, gloo, uneven shards) equal one
process's, exactly."""

from __future__ import annotations

import numpy as np

from rsvlm_zoo.metrics import GroundingAccuracy
from tests.metrics.gloo import gloo_group, rank_results, save_rank_results, start_ranks

SPLIT = 37  # rank 0 holds pairs [0, 37), rank 1 the other 63: uneven shards


def _pairs(n: int = 100) -> tuple[list, list]:
    rng = np.random.default_rng(11)
    preds, target = [], []
    for i in range(n):
        x, y = rng.uniform(0, 80, 2)
        w, h = rng.uniform(5, 40, 2)
        box = [float(x), float(y), float(x + w), float(y + h)]
        target.append([*box, float(rng.uniform(-90, 90))] if i % 3 else box)
        dx, dy = rng.normal(0, 6, 2)
        guess = [box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy]
        preds.append(None if i % 11 == 0 else ([*guess, float(rng.uniform(-90, 90))] if i % 2 else guess))
    return preds, target


def _scores(metric: GroundingAccuracy) -> dict[str, float]:
    return {k: float(v) for k, v in metric.compute().items()}


def _worker(rank: int, port: int, out_dir: str) -> None:
    with gloo_group(rank, port):
        preds, target = _pairs()
        lo, hi = (0, SPLIT) if rank == 0 else (SPLIT, len(preds))
        metric = GroundingAccuracy()
        for start in range(lo, hi, 8):  # several batches per rank
            stop = min(start + 8, hi)
            metric.update(preds[start:stop], target[start:stop])
        results = _scores(metric)
        results["local_pairs_after_compute"] = sum(len(t) for t in metric.ious)
        save_rank_results(out_dir, rank, results)


def test_two_gloo_processes_score_rotated_boxes_as_one(tmp_path):
    context = start_ranks(_worker, tmp_path)
    preds, target = _pairs()
    single = GroundingAccuracy()
    single.update(preds, target)  # one batch, one process
    expected = _scores(single)
    ranks = rank_results(context, tmp_path)
    assert 0 < expected["miou"] < 1 and expected["unparsed"] == 10
    for rank, local in ((0, SPLIT), (1, len(preds) - SPLIT)):
        got = ranks[rank]
        assert got.pop("local_pairs_after_compute") == local  # states are back to the local shard
        assert got == expected, (rank, got, expected)
