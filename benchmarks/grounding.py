"""Grounding metric speed: 100,000 horizontal and 100,000 rotated box pairs through `GroundingAccuracy`.

    python benchmarks/grounding.py [--pairs 100000] [--repeats 3] [--seed 0]

Pairs are drawn the way a grounding evaluation produces them: a reference box anywhere in a 1000 x 1000 image and a
prediction near it (corners shifted by a few tens of pixels), so most pairs overlap and some do not; every 20th
prediction is None (an answer without a box). The rotated set gives every reference and prediction an angle in
[-90, 90) degrees, so every pair takes the exact polygon path; the horizontal set takes the closed form.

Each timing is one `GroundingAccuracy()` built, `update(preds, target)` with Python lists of tuples (as the
command passes them) and `compute()`, best of `--repeats` after one warm-up. Target: under 1 s each. A second
line per set times the IoU kernel alone on tensors (`pair_ious`). Prints the scores too, as a check that the work
was done.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_pairs(n: int, rotated: bool, seed: int) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    lo = rng.uniform(0, 900, (n, 2))
    size = rng.uniform(8, 100, (n, 2))
    target = np.concatenate([lo, lo + size], axis=1)
    pred = target + rng.normal(0, 0.25, (n, 4)) * np.concatenate([size, size], axis=1)
    pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2])
    if rotated:
        angle = rng.uniform(-90, 90, (n, 1))
        target = np.concatenate([target, angle], axis=1)
        pred = np.concatenate([pred, angle + rng.normal(0, 10, (n, 1))], axis=1)
    preds = [None if i % 20 == 0 else tuple(row) for i, row in enumerate(pred.tolist())]
    return preds, [tuple(row) for row in target.tolist()]


def best_of(repeats: int, run: Callable[[], object]) -> tuple[float, object]:
    run()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from rsvlm_zoo.metrics import GroundingAccuracy
    from rsvlm_zoo.metrics.grounding import pair_ious

    print(
        f"{args.pairs} pairs per set; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.2f}"
    )
    print(f"\n{'set':<12}{'metric s':>10}{'kernel s':>10}{'target':>8}   scores")
    worst = 0.0
    for name, rotated in (("horizontal", False), ("rotated", True)):
        preds, target = make_pairs(args.pairs, rotated, args.seed)

        def score(preds: list = preds, target: list = target) -> dict[str, float]:
            metric = GroundingAccuracy()
            metric.update(preds, target)
            return {k: float(v) for k, v in metric.compute().items()}

        seconds, scores = best_of(args.repeats, score)
        filled = [p if p is not None else t for p, t in zip(preds, target, strict=True)]
        pred_t = torch.tensor(filled, dtype=torch.float64)
        true_t = torch.tensor(target, dtype=torch.float64)
        kernel, _ = best_of(args.repeats, lambda p=pred_t, q=true_t: pair_ious(p, q))
        worst = max(worst, seconds)
        shown = ", ".join(f"{k} {v:.4f}" if k != "unparsed" else f"{k} {int(v)}" for k, v in scores.items())
        verdict = "ok" if seconds < 1.0 else "SLOW"
        print(f"{name:<12}{seconds:>10.3f}{kernel:>10.3f}{verdict:>8}   {shown}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0 if worst < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
