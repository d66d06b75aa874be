"""Training-loader throughput of the region DataModule on real scenes, next to the tiny model's step rate.

    python benchmarks/data.py [--data ../shared/data] [--batch 8] [--batches 4] [--policies squash tile]
                              [--no-packed] [--pack-scenes 64] [--stream-batches 32]
                              [--pack-workers N] [--pack-only]

Source: the iSAID sample scenes (`regions/isaid`, COCO instances with uncompressed RLE) read by
`AnnotationSource("coco")`, with category questions built on the fly (`InstructionSource`, one question per
region, at most `--regions` regions per sample) and repeated with `MixedSource` to `batch x batches` samples.
For each image policy (`squash`: whole scene to the 128 px input; `tile`: 128 px tiles, a PNG decode per tile)
the training loader is timed with 0 and 2 workers: PNG decode + RLE decode and mask resize + template and
tokenisation + collate, from creating the iterator (worker start-up included) to the last batch. Next to it,
forward + backward + AdamW step of `aquila_plus_tiny` (stage 3) on one of those batches (best of `--steps`).
Exits with a message when the sample-data folder is absent.

Packed rows (needs LitData; `--no-packed` leaves them out): the same scenes packed once with
`rsvlm_zoo.data.pack.pack` at the model's input (PNG, squash: whole scene at 128 px; tile: 128 px tiles) and
read by `StreamingSource` through the same instruction, mixing and loader path, timed the same way (`packed`)
and over `--stream-batches` batches (start-up spread over more samples). Packing speed: a COCO file naming the
two scenes `--pack-scenes` times in all, packed with 1 worker and with `--pack-workers` (default: the CPUs;
LitData import excluded, pool start-up and the final merge included). The shards are the same for any number of
workers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.datamodules import AnnotationSource, InstructionSource, MixedSource, RegionDataModule, SampleSource

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def loader_rate(
    model: Any, source: SampleSource, policy: str, batch: int, workers: int
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


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of its finished child processes (the packing workers)."""
    import resource

    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def packing_rate(
    isaid: Path, root: Path, scenes: int, size: int, policy: str, workers: int | None = 2
) -> tuple[float, int, float]:
    """(scenes/s, items written, CPU ms per scene) packing a COCO file naming the sample scenes `scenes` times.

    The CPU time (all processes) does not depend on how busy the machine is: with N idle cores, packing runs at
    about N * 1000 / (CPU ms per scene) scenes/s at best.
    """
    import json

    from rsvlm_zoo.data.pack import pack

    data = json.loads(isaid.read_text())
    images, annotations = [], []
    for k in range(scenes):
        image = dict(data["images"][k % len(data["images"])])
        old, image["id"] = image["id"], k + 1
        images.append(image)
        for ann in data["annotations"]:
            if ann["image_id"] == old:
                annotations.append({**ann, "image_id": k + 1, "id": len(annotations) + 1})
    repeated = root / f"repeated-{scenes}.json"
    repeated.write_text(json.dumps({**data, "images": images, "annotations": annotations}))
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    out, images_dir = root / f"repeated-{policy}-{workers}", isaid.parent / "images"
    report = pack(
        "coco", repeated, out, images=images_dir, input_size=size, image_policy=policy, workers=workers, force=True
    )
    cpu = (cpu_seconds() - cpu0) * 1e3 / scenes
    return scenes / (time.perf_counter() - t0), report.samples, cpu


def packing_rows(args: argparse.Namespace, isaid: Path, size: int, root: Path) -> None:
    """Packing speed per policy with 1 worker and with `--pack-workers` (default: the CPUs)."""
    from rsvlm_zoo.data.packing.settings import default_workers

    for policy in args.policies:
        if policy == "pad":
            continue
        for workers in (1, args.pack_workers or default_workers()):
            rate, items, cpu = packing_rate(isaid, root, args.pack_scenes, size, policy, workers)
            name = f"pack {policy}, {workers} workers ({args.pack_scenes} scenes)"
            print(f"{name:<40}{rate:>10.1f}   scenes/s, {items} items written, {cpu:.0f} CPU ms/scene")


def packed_rows(args: argparse.Namespace, model: Any, isaid: Path, options: dict[str, Any]) -> None:
    """Loader rows for the packed scenes, then packing speed."""
    import tempfile

    from rsvlm_zoo.data.pack import pack
    from rsvlm_zoo.datamodules import StreamingSource

    size = model.encoder.input_size[0]
    with tempfile.TemporaryDirectory(prefix="rsvlm-bench-") as tmp:
        root = Path(tmp)
        for policy in [] if args.pack_only else args.policies:
            if policy == "pad":
                continue
            out = root / f"isaid-{policy}"
            pack("coco", isaid, out, input_size=size, image_policy=policy, workers=2)
            questions = InstructionSource(StreamingSource(out), "category", options)
            for label, batches in (("packed", args.batches), (f"packed x{args.stream_batches}", args.stream_batches)):
                source = MixedSource([questions], num_samples=args.batch * batches, seed=0)
                for workers in (0, 2):
                    rate, first, n, dropped = loader_rate(model, source, policy, args.batch, workers)
                    name = f"{label} {policy}, {workers} workers"
                    print(f"{name:<40}{rate:>10.1f}{first:>15.2f}{n:>9}{dropped:>15}")
        packing_rows(args, isaid, size, root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared sample-data folder")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=4, help="training batches per loader pass")
    parser.add_argument("--regions", type=int, default=8, help="questions (regions) per sample")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (best is kept)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--policies", nargs="+", default=["squash", "tile"], choices=["squash", "pad", "tile"])
    parser.add_argument("--no-packed", action="store_true", help="leave out the packed-shard rows")
    parser.add_argument("--pack-scenes", type=int, default=64, help="scenes in the packing-speed run")
    parser.add_argument("--pack-workers", type=int, default=None, help="workers of the second packing row (CPUs)")
    parser.add_argument("--pack-only", action="store_true", help="only the packing-speed rows")
    parser.add_argument("--stream-batches", type=int, default=32, help="batches of the longer packed pass")
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
    if args.pack_only:
        import litdata  # noqa: F401 - imported here so its start-up is not timed in the packing rows

        packed_rows(args, model, isaid, options)
        return
    step_batch = None
    for policy in args.policies:
        for workers in (0, 2):
            rate, first, n, dropped = loader_rate(model, source, policy, args.batch, workers)
            print(f"{f'loader {policy}, {workers} workers':<40}{rate:>10.1f}{first:>15.2f}{n:>9}{dropped:>15}")
        if step_batch is None:
            dm = RegionDataModule(train=source, batch_size=args.batch, image_policy=policy)
            dm.attach(model.input_spec())
            step_batch = next(b for b in dm.train_dataloader() if b is not None)
    if not args.no_packed:
        import litdata  # noqa: F401 - imported here so its start-up is not timed in the packing row

        packed_rows(args, model, isaid, options)
    t_step = step_rate(model, step_batch, args.steps)
    n = step_batch["input_ids"].shape[0]
    label = f"tiny model train step ({args.policies[0]} batch)"
    regions = step_batch["region_masks"].shape[0]
    print(f"{label:<40}{n / t_step:>10.1f}   ({t_step * 1e3:.0f} ms/step, {n} samples, {regions} regions)")


if __name__ == "__main__":
    main()
