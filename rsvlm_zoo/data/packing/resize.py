"""One sample at the model input: the image resized, mask geometry as COCO RLE at the new size, boxes scaled."""

from __future__ import annotations

from typing import Any

import numpy as np

from rsvlm_zoo.data.schema import DataFormatError, Region, Sample, Turn
from rsvlm_zoo.data.tiling import MaskPatch, mask_patch


def _bins(length: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) input pixel of every output pixel under area resizing (adaptive average pooling)."""
    i = np.arange(out, dtype=np.int64)
    return (i * length) // out, -((-(i + 1) * length) // out)


def _resize_patch(patch: MaskPatch, height: int, width: int, out_h: int, out_w: int) -> np.ndarray:
    """The region's mask at (out_h, out_w): area coverage of each output pixel, kept where it is at least 0.5.

    Only the output pixels whose input bins meet the patch are computed (integral image of the patch). A
    region whose coverage stays under 0.5 everywhere keeps its pixels of highest coverage, so no object vanishes.
    """
    out = np.zeros((out_h, out_w), dtype=bool)
    ph, pw = patch.mask.shape
    if ph == 0 or pw == 0:
        return out
    integral = np.zeros((ph + 1, pw + 1), dtype=np.int64)
    integral[1:, 1:] = patch.mask.astype(np.int64).cumsum(0).cumsum(1)
    rs, re_ = _bins(height, out_h)
    cs, ce = _bins(width, out_w)
    rows = np.nonzero((re_ > patch.y0) & (rs < patch.y0 + ph))[0]
    cols = np.nonzero((ce > patch.x0) & (cs < patch.x0 + pw))[0]
    r0 = np.clip(rs[rows] - patch.y0, 0, ph)[:, None]
    r1 = np.clip(re_[rows] - patch.y0, 0, ph)[:, None]
    c0 = np.clip(cs[cols] - patch.x0, 0, pw)[None, :]
    c1 = np.clip(ce[cols] - patch.x0, 0, pw)[None, :]
    inside = integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]
    area = (re_[rows] - rs[rows])[:, None] * (ce[cols] - cs[cols])[None, :]
    coverage = inside / area
    keep = coverage >= 0.5
    if not keep.any() and coverage.max() > 0:
        keep = coverage == coverage.max()
    out[np.ix_(rows, cols)] = keep
    return out


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of a boolean mask (`counts` as COCO's compressed string)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def resize_region(region: Region, height: int, width: int, out_h: int, out_w: int) -> Region:
    """`region` at (out_h, out_w): mask geometry (mask, polygons, RLE) as an RLE, the box scaled.

    The mask is the area coverage of the scene mask per output pixel, kept where it is at least one half (at
    least one pixel stays); the box is scaled by (out_w / width, out_h / height). Category, text and
    attributes are kept.

    Raises:
        DataFormatError: invalid geometry (see `mask_patch`).
    """
    rle = None
    if region.has_mask_geometry:
        rle = encode_rle(_resize_patch(mask_patch(region, height, width), height, width, out_h, out_w))
    box = None
    if region.box is not None:
        sx, sy = out_w / width, out_h / height
        x1, y1, x2, y2 = region.box
        box = (float(x1) * sx, float(y1) * sy, float(x2) * sx, float(y2) * sy)
    return Region(rle=rle, box=box, category=region.category, text=region.text, attributes=dict(region.attributes))


def resize_image(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """HxWx3 uint8 image at (out_h, out_w): PIL bilinear with antialiasing (unchanged when already that size)."""
    from PIL import Image

    if image.shape[:2] == (out_h, out_w):
        return image
    return np.asarray(Image.fromarray(image).resize((out_w, out_h), Image.BILINEAR))


def resize_sample(sample: Sample, image: np.ndarray, out_h: int, out_w: int) -> Sample:
    """`sample` with its decoded `image` and its regions resized to (out_h, out_w): what a packed shard holds.

    Raises:
        DataFormatError: invalid region geometry, naming the record and region.
    """
    height, width = image.shape[:2]
    regions = []
    for k, region in enumerate(sample.regions):
        try:
            regions.append(resize_region(region, height, width, out_h, out_w))
        except DataFormatError as err:
            raise DataFormatError(f"{sample.where()}: region {k}: {err}") from err
    return Sample(
        image=resize_image(image, out_h, out_w),
        width=out_w,
        height=out_h,
        regions=regions,
        conversation=[Turn(t.role, t.text) for t in sample.conversation],
        captions=list(sample.captions),
        region_refs=None if sample.region_refs is None else list(sample.region_refs),
        sample_id=sample.sample_id,
        source=sample.source,
        split=sample.split,
        meta=dict(sample.meta),
    )


__all__ = ["encode_rle", "resize_image", "resize_region", "resize_sample"]
