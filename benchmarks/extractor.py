"""Vectorised MaskAwareExtractor vs a per-mask loop (upstream's way), full-size widths, one run.

    python benchmarks/extractor.py [--images 8] [--masks 16] [--size 512] [--device cpu]

Prints both times, the speed ratio and the largest output difference.
"""

from __future__ import annotations

import argparse
import time

import torch

from rsvlm_zoo.models.blocks.mask_extractor import MaskAwareExtractor, area_downsample
from rsvlm_zoo.models.blocks.regions import RegionBatch


def per_mask_loop(
    ext: MaskAwareExtractor, feats: list[torch.Tensor], masks: torch.Tensor, index: torch.Tensor
) -> torch.Tensor:
    """Upstream's structure: for every image, for every mask, resize, pool and project one at a time."""
    out = []
    for b in range(feats[0].shape[0]):
        for m in masks[index == b]:
            summed = 0
            for feat, proj in zip(feats, ext.level_proj, strict=True):
                mm = area_downsample(m[None], tuple(feat.shape[-2:]))[0]
                pooled = (feat[b] * mm).sum((1, 2)) / mm.sum()
                summed = summed + proj(pooled)
            finest = area_downsample(m[None], tuple(feats[0].shape[-2:]))  # the extractor reads the stride-4 level
            pos = area_downsample(finest, (ext.pos_size, ext.pos_size)).flatten()
            out.append(torch.stack([ext.mask_proj(summed), ext.pos_mlp(pos)]))
    return torch.stack(out)


def timed(fn, device: str, repeats: int) -> tuple[float, torch.Tensor]:
    result = fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        result = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--masks", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    dev = args.device
    widths, strides = [192, 384, 768, 1536], [4, 8, 16, 32]
    ext = MaskAwareExtractor(widths, out_dim=args.dim).to(dev).eval()
    feats = [
        torch.randn(args.images, c, args.size // s, args.size // s, device=dev)
        for c, s in zip(widths, strides, strict=True)
    ]
    # Random boxes of 6..120 px as masks, small objects included.
    r = args.images * args.masks
    masks = torch.zeros(r, args.size, args.size, device=dev)
    sizes = torch.randint(6, 120, (r, 2))
    corners = (torch.rand(r, 2) * (args.size - sizes)).long()
    for i in range(r):
        (y, x), (h, w) = corners[i].tolist(), sizes[i].tolist()
        masks[i, y : y + h, x : x + w] = 1
    index = torch.arange(args.images, device=dev).repeat_interleave(args.masks)
    regions = RegionBatch(image_index=index, masks=masks, image_size=(args.size, args.size))
    with torch.no_grad():
        t_loop, ref = timed(lambda: per_mask_loop(ext, feats, masks, index), dev, args.repeats)
        t_vec, out = timed(lambda: ext(feats, regions), dev, args.repeats)
    diff = (out - ref).abs().max().item()
    print(f"MaskAwareExtractor, {args.images} images x {args.masks} masks at {args.size} px, D={args.dim}, {dev}")
    print(f"{'per-mask loop':<16}{t_loop * 1000:10.1f} ms")
    print(f"{'vectorised':<16}{t_vec * 1000:10.1f} ms")
    print(f"{'speed-up':<16}{t_loop / t_vec:10.2f} x")
    print(f"{'max |diff|':<16}{diff:10.2e}  (max |output| {ref.abs().max().item():.2e})")


if __name__ == "__main__":
    main()
