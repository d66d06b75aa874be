"""`describe()` on real scenes with 16, 116 and 536 regions: shared prefix vs whole prompts vs one at a time.

    python benchmarks/describe.py [--counts 16,116,536] [--max-new-tokens 32] [--repeats 1] [--single-upto 16]

Models: `aquila_plus_tiny` (masks) and `mgimm_tiny` (the masks' tight boxes, `task="attributes"`), random
weights built after `torch.manual_seed(0)`, greedy decoding, `torch.set_num_threads(2)`. Scenes (from the
shared sample data, `../shared/data`, see its README):

- 16 and 116 regions: iSAID P0005 (884 x 977), its first 16 / 116 instance masks (RLE) in file order;
- 536 regions: DOTA P1888 (712 x 557) shrunk 3x and tiled 3 x 3 (the sample data holds no single scene with
  hundreds of objects), the first 536 of its 576 object polygons.

Ways, each one `describe()` call per scene unless said:

- shared: the default path (each image encoded once, each region resized and extracted once, the shared
  prompt prefix run once and its KV cache reused by every question; `rsvlm_zoo.models.shared_prefix`);
- whole: `reuse_prefix=False`, every prompt written out and generated as one left-padded batch (the
  reference path; for Aquila-plus every prompt lists every region, so it is quadratic in the regions);
- one at a time (up to `--single-upto` regions): MGIMM one `describe()` call per box; Aquila-plus each
  question of the batched call (the same prompt, listing the same regions) answered on its own through
  `answer_questions`, a batch of one (prefix + own tokens, no sharing across questions).

Aquila-plus uses its default `region_list_policy="auto"`: all regions listed while the prompt fits the
tiny LLM's 1,024 positions (less the answer), otherwise even chunks that fit (536 regions: 3 chunks).
Whole prompts at 536 regions take minutes and are skipped unless `--whole-upto` allows them. Prints the best
of `--repeats` per way, the shared/whole agreement, and the time of each count relative to the smallest.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rsvlm_zoo import build_model  # noqa: E402
from rsvlm_zoo.data.readers.coco import read_coco  # noqa: E402
from rsvlm_zoo.data.schema import Region  # noqa: E402
from rsvlm_zoo.models import aquila_plus  # noqa: E402
from rsvlm_zoo.models.shared_prefix import answer_questions  # noqa: E402
from tests.models.test_describe_shared_prefix import dota_mosaic  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "regions"


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best wall time of `repeats` calls after a warm-up, and the last result."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def isaid_scene(count: int) -> tuple[np.ndarray, list[np.ndarray], str]:
    """iSAID P0005 and its first `count` instance masks."""
    from rsvlm_zoo.data.images import load_image

    samples = read_coco(DATA / "isaid" / "instances.json", DATA / "isaid" / "images")
    sample = next(s for s in samples if Path(str(s.image)).name == "P0005.png")
    image = load_image(sample.image)
    h, w = image.shape[:2]
    masks = [r.to_mask(h, w) for r in sample.regions[:count]]
    return image, masks, f"iSAID P0005 {w}x{h}"


def scene(count: int) -> tuple[np.ndarray, list[np.ndarray], str]:
    """The benchmark scene with `count` regions."""
    if count <= 131:
        return isaid_scene(count)
    image, masks = dota_mosaic(DATA / "dota")
    if len(masks) < count:
        raise SystemExit(f"the DOTA mosaic has {len(masks)} regions, fewer than {count}")
    return image, masks[:count], f"DOTA P1888 3x3 mosaic {image.shape[1]}x{image.shape[0]}"


def recorded_questions(model: Any, image: np.ndarray, masks: list[np.ndarray], kw: dict[str, Any]) -> list[Any]:
    """The questions a `describe()` call asks (its region-list policy applied)."""
    recorded: list[Any] = []

    def record(model: Any, images: Any, regions: Any, questions: list[Any], *args: Any) -> list[str]:
        recorded.extend(questions)
        return [""] * len(questions)

    original = aquila_plus.answer_questions
    aquila_plus.answer_questions = record
    try:
        model.describe([image], [masks], **kw)
    finally:
        aquila_plus.answer_questions = original
    return recorded


def measure(name: str, count: int, args: argparse.Namespace) -> dict[str, Any]:
    """Times of one model on the scene with `count` regions."""
    image, masks, where = scene(count)
    torch.manual_seed(0)
    model = build_model(name).eval()
    kw: dict[str, Any] = {"max_new_tokens": args.max_new_tokens}
    if model.input_spec().region_kind == "box":
        regions: list[Any] = [Region(mask=m).to_box() for m in masks]
        kw["task"] = "attributes"
    else:
        regions = masks
    out: dict[str, Any] = {"name": name, "count": count, "scene": where}
    with torch.no_grad():
        out["shared"], answers = best_of(lambda: model.describe([image], [regions], **kw)[0], args.repeats)
        if count <= args.whole_upto:
            out["whole"], whole = best_of(
                lambda: model.describe([image], [regions], reuse_prefix=False, **kw)[0], args.repeats
            )
            out["same"] = sum(a == b for a, b in zip(answers, whole, strict=True))
        if count <= args.single_upto:
            if kw.get("task"):
                out["single"], _ = best_of(lambda: [model.describe([image], [[b]], **kw) for b in regions], 1)
            else:
                questions = recorded_questions(model, image, masks, kw)
                objects = [[Region(mask=m) for m in masks]]
                out["single"], _ = best_of(
                    lambda: [answer_questions(model, [image], objects, [q], args.max_new_tokens) for q in questions],
                    1,
                )
    out["distinct"] = len(set(answers))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="16,116,536")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--whole-upto", type=int, default=116, help="largest count timed with whole prompts")
    parser.add_argument("--single-upto", type=int, default=16, help="largest count timed one question at a time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    counts = [int(c) for c in args.counts.split(",")]
    rows = [measure(name, count, args) for name in ("aquila_plus_tiny", "mgimm_tiny") for count in counts]
    print(
        f"describe(): max_new_tokens={args.max_new_tokens}, greedy, cpu, {args.threads} threads, "
        f"best of {args.repeats} after a warm-up"
    )
    print(
        f"{'model':<18}{'regions':>8}{'shared':>11}{'vs first':>10}{'whole':>11}{'whole/shared':>13}{'same':>9}"
        f"{'one at a time':>15}  scene"
    )
    first: dict[str, float] = {}
    for r in rows:
        first.setdefault(r["name"], r["shared"])
        whole = f"{r['whole']:9.2f} s" if "whole" in r else f"{'-':>11}"
        ratio = f"{r['whole'] / r['shared']:12.1f}x" if "whole" in r else f"{'-':>13}"
        same = f"{r['same']}/{r['count']}" if "same" in r else "-"
        single = f"{r['single']:13.2f} s" if "single" in r else f"{'-':>15}"
        print(
            f"{r['name']:<18}{r['count']:>8}{r['shared']:9.2f} s{r['shared'] / first[r['name']]:9.2f}x"
            f"{whole}{ratio}{same:>9}{single}  {r['scene']}"
        )
    print("shared: prefix KV cache reused, regions extracted once; whole: every prompt written out, one batch")
    print("vs first: shared time relative to the smallest count of the same model; same: shared == whole answers")


if __name__ == "__main__":
    main()
