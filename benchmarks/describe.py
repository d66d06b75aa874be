"""Batched `describe()` vs one region at a time: the regions of one synthetic scene, tiny random models.

    python benchmarks/describe.py [--regions 16] [--max-new-tokens 32] [--side 256] [--repeats 5]

Models: `aquila_plus_tiny` (masks) and `mgimm_tiny` (boxes, `task="attributes"`), random weights built after
`torch.manual_seed(0)`, greedy decoding, `torch.set_num_threads(2)`. Scene: `generate_scene` with exactly
`--regions` objects; the box model gets each object's tight box.

- batched: one `describe()` call answering every region (one left-padded generation batch);
- one at a time: the same prompts, each generated as a batch of one. For MGIMM that is one `describe()` call
  per box (its per-box prompt holds only that box, so the samples are the batched call's). A one-mask
  Aquila-plus `describe()` call would ask another question (its prompt enumerates all the regions of the
  scene), so the batched call's inputs are cut into one-sequence batches (`tests.unbatched`) and each goes
  through `generate()`; that timing leaves out the preprocessing, which the batched `describe()` timing
  includes, so a second Aquila-plus row (marked *) times `generate()` on the batched call's batch instead.

Each way gets a warm-up call, then the ways are timed in turn and the best of `--repeats` is kept. Prints
both times, the ratio, how many answers agree between the two ways (every mismatch is printed) and how many
distinct answers there are (a random model may give the same text for many regions, which makes agreement a
weaker check).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.data.schema import Region
from rsvlm_zoo.data.synthetic import generate_scene
from tests.unbatched import recorded_generation_batches, split_generation_batch


def timed_alternately(fns: list[Callable[[], Any]], repeats: int) -> list[tuple[float, Any]]:
    """Best-of-`repeats` time and last result of each function, run in turn so all see the same machine load."""
    results = [fn() for fn in fns]  # warm-up
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            results[i] = fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return list(zip(best, results, strict=True))


def scene_regions(count: int, side: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A synthetic scene with exactly `count` objects (trying seeds from `seed` on) and their masks."""
    for s in range(seed, seed + 50):
        image, objects = generate_scene(s, side=side, min_objects=count, max_objects=count)
        if len(objects) == count:
            return image, [o.mask for o in objects]
    raise SystemExit(f"no {side} px scene with {count} non-overlapping objects found; raise --side")


def compare(name: str, image: np.ndarray, masks: list[np.ndarray], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Timing rows of one model: batched vs one at a time (and, for the mask model, generation alone)."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    gen = {"max_new_tokens": args.max_new_tokens}
    if model.input_spec().region_kind == "box":
        boxes = [Region(mask=m).to_box() for m in masks]
        kw = {**gen, "task": "attributes"}
        with torch.no_grad():
            (t_batched, answers), (t_single, singles) = timed_alternately(
                [
                    lambda: model.describe([image], [boxes], **kw)[0],
                    lambda: [model.describe([image], [[b]], **kw)[0][0] for b in boxes],
                ],
                args.repeats,
            )
        return [row(name, "describe() per box", t_batched, answers, t_single, singles)]

    with recorded_generation_batches(model) as recorded:
        model.describe([image], [masks], **gen)
    batch = recorded[0]
    one_sequence_batches = split_generation_batch(batch)
    with torch.no_grad():
        (t_describe, answers), (t_generate, generated), (t_single, singles) = timed_alternately(
            [
                lambda: model.describe([image], [masks], **gen)[0],
                lambda: model.generate(batch, **gen),
                lambda: [model.generate(one, **gen)[0] for one in one_sequence_batches],
            ],
            args.repeats,
        )
    return [
        row(name, "generate() per sequence", t_describe, answers, t_single, singles),
        row(f"{name} *", "generate() per sequence", t_generate, generated, t_single, singles),
    ]


def row(name: str, how: str, t_batched: float, answers: list[str], t_single: float, singles: list[str]) -> dict:
    return {"name": name, "how": how, "batched": t_batched, "single": t_single, "answers": answers, "singles": singles}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regions", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image, masks = scene_regions(args.regions, args.side, args.seed)
    rows = [r for name in ("aquila_plus_tiny", "mgimm_tiny") for r in compare(name, image, masks, args)]

    print(
        f"describe(): {len(masks)} regions of one {args.side} px synthetic scene, max_new_tokens="
        f"{args.max_new_tokens}, greedy, cpu, {args.threads} threads, best of {args.repeats}"
    )
    header = f"{'model':<20}{'batched':>12}{'one at a time':>16}{'ratio':>9}  {'identical':>9}  {'distinct':>8}"
    print(f"{header}  one at a time by")
    for r in rows:
        same = sum(a == b for a, b in zip(r["answers"], r["singles"], strict=True))
        times = f"{r['batched'] * 1000:9.1f} ms{r['single'] * 1000:13.1f} ms{r['single'] / r['batched']:8.2f}x"
        print(f"{r['name']:<20}{times}  {f'{same}/{len(masks)}':>9}  {len(set(r['answers'])):>8}  {r['how']}")
    print("* batched = generate() on the batch describe() builds, without its preprocessing (as one at a time)")
    for r in rows:
        for k, (a, b) in enumerate(zip(r["answers"], r["singles"], strict=True), start=1):
            if a != b:
                print(f"MISMATCH {r['name']} region{k}:\n  batched:       {a!r}\n  one at a time: {b!r}")


if __name__ == "__main__":
    main()
