"""Training-loader throughput of the region DataModule on real scenes, next to the tiny model's step rate.

    python benchmarks/data.py [--data ../shared/data] [--batch 8] [--batches 4] [--policies squash tile]

Source: the iSAID sample scenes (`regions/isaid`, COCO instances with uncompressed RLE) read by
`AnnotationSource("coco")`, with category questions built on the fly (`InstructionSource`, one question per
region, at most `--regions` regions per sample) and repeated with `MixedSource` to `batch x batches` samples.
For each image policy (`squash`: whole scene to the 128 px input; `tile`: 128 px tiles, a PNG decode per tile)
the training loader is timed with 0 and 2 workers: PNG decode + RLE decode and mask resize + template and
tokenisation + collate, from creating the iterator (worker start-up included) to the last batch. Next to it,
forward + backward + AdamW step of `aquila_plus_tiny` (stage 3) on one of those batches (best of `--steps`).
Exits with a message when the sample-data folder is absent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.datamodules import AnnotationSource, InstructionSource, MixedSource, RegionDataModule

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def loader_rate(
    model: Any, source: MixedSource, policy: str, batch: int, workers: int
) -> tuple[float, float, int, int]:
    """(samples/s, seconds to the first batch, samples, dropped tiles) of one pass of the training loader."""
    dm = RegionDataModule(train=source, batch_size=batch, num_workers=workers, image_policy=policy)
    dm.attach(model.input_spec())
    loader = dm.train_dataloader()
    t0 = time.perf_counter()
    first, samples, dropped = None, 0, 0
    for item in loader:
        first = first or time.perf_counter() - t0
        if item is not None:
            samples, dropped = samples + item["input_ids"].shape[0], dropped + item["dropped_tiles"]
    return samples / (time.perf_counter() - t0), first or 0.0, samples, dropped


def step_rate(model: Any, batch: dict[str, Any], repeats: int) -> float:
    """Seconds of one training step (forward + backward + AdamW), best of `repeats` after a warm-up."""
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()
    best = float("inf")
    for k in range(repeats + 1):
        t0 = time.perf_counter()
        model(batch).backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        if k:
            best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared sample-data folder")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=4, help="training batches per loader pass")
    parser.add_argument("--regions", type=int, default=8, help="questions (regions) per sample")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (best is kept)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--policies", nargs="+", default=["squash", "tile"], choices=["squash", "pad", "tile"])
    args = parser.parse_args()
    isaid = args.data / "regions" / "isaid" / "instances.json"
    if not isaid.is_file():
        sys.exit(f"benchmarks/data.py: {isaid} is absent; pass --data <folder with regions/isaid> (see its README)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("aquila_plus_tiny", stage=3)
    scenes = AnnotationSource("coco", str(isaid))
    options = {"per_region": True, "shuffle": True, "max_regions": args.regions}
    questions = InstructionSource(scenes, "category", options)
    source = MixedSource([questions], num_samples=args.batch * args.batches, seed=0)
    sizes = ", ".join(f"{s.width}x{s.height}" for s in scenes.samples)
    n_masks = sum(len(s.regions) for s in scenes.samples)
    print(f"iSAID sample scenes ({sizes} px, {n_masks} instance masks), {args.regions} category questions/sample")
    print(f"aquila_plus_tiny input {model.encoder.input_size[0]} px, batch {args.batch}, {args.threads} torch threads")
    print(f"{'':<40}{'samples/s':>10}{'first batch s':>15}{'samples':>9}{'dropped tiles':>15}")
    step_batch = None
    for policy in args.policies:
        for workers in (0, 2):
            rate, first, n, dropped = loader_rate(model, source, policy, args.batch, workers)
            print(f"{f'loader {policy}, {workers} workers':<40}{rate:>10.1f}{first:>15.2f}{n:>9}{dropped:>15}")
        if step_batch is None:
            dm = RegionDataModule(train=source, batch_size=args.batch, image_policy=policy)
            dm.attach(model.input_spec())
            step_batch = next(b for b in dm.train_dataloader() if b is not None)
    t_step = step_rate(model, step_batch, args.steps)
    n = step_batch["input_ids"].shape[0]
    label = f"tiny model train step ({args.policies[0]} batch)"
    regions = step_batch["region_masks"].shape[0]
    print(f"{label:<40}{n / t_step:>10.1f}   ({t_step * 1e3:.0f} ms/step, {n} samples, {regions} regions)")


if __name__ == "__main__":
    main()
