"""Region geometry: rasterising polygons and RLE, deriving boxes."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from rsvlm_zoo.data.validation import DataFormatError, RegionGeometry, validate_region


def decode_rle(rle: dict, height: int, width: int) -> np.ndarray:
    """Decode a COCO RLE (compressed string or uncompressed list counts) to a boolean mask.

    Raises:
        DataFormatError: when the RLE's size is not (height, width).
    """
    size = list(rle.get("size", []))
    if size != [height, width]:
        raise DataFormatError(
            f"RLE size {size} does not match the image size [{height}, {width}]; "
            "fix the annotation's 'size' or the image's height/width"
        )
    if isinstance(rle.get("counts"), list):
        rle = mask_utils.frPyObjects(rle, height, width)
    elif isinstance(rle.get("counts"), str):
        rle = {"size": size, "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def rasterise_polygons(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Fill (N, 2) xy polygons into a boolean mask with COCO's rasteriser.

    Raises:
        DataFormatError: when a polygon has fewer than 3 points.
    """
    flat = []
    for poly in polygons:
        poly = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(poly) < 3:
            raise DataFormatError(f"polygon with {len(poly)} point(s) cannot enclose an area; it needs at least 3")
        flat.append(poly.reshape(-1).tolist())
    rles = mask_utils.frPyObjects(flat, height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def region_to_mask(region: RegionGeometry, height: int, width: int) -> np.ndarray:
    """Boolean (height, width) mask of a region from whatever geometry it carries.

    Raises:
        DataFormatError: when the geometry is missing, invalid (`validate_region`) or of the wrong size.
    """
    validate_region(region, width, height)
    if region.mask is not None:
        mask = np.asarray(region.mask)
        if mask.shape != (height, width):
            raise DataFormatError(
                f"mask is {mask.shape[1] if mask.ndim > 1 else '?'}x{mask.shape[0]} but image is "
                f"{width}x{height}; masks must be given at the image's own size"
            )
        return mask.astype(bool)
    if region.rle is not None:
        return decode_rle(region.rle, height, width)
    if region.polygons:
        return rasterise_polygons(region.polygons, height, width)
    if region.box is not None:
        x1, y1, x2, y2 = region.box
        out = np.zeros((height, width), dtype=bool)
        c1, r1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        c2, r2 = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
        out[r1:r2, c1:c2] = True
        return out
    raise DataFormatError("region has no geometry (no mask, polygon, RLE or box)")


def region_to_box(region: RegionGeometry) -> tuple[float, float, float, float]:
    """Axis-aligned (x1, y1, x2, y2) box of a region.

    Raises:
        DataFormatError: when the region has no geometry, invalid geometry (`validate_region`) or an empty mask.
    """
    validate_region(region, None, None)
    if region.box is not None:
        return tuple(float(v) for v in region.box)  # type: ignore[return-value]
    if region.polygons:
        pts = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in region.polygons])
        return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
    if region.mask is not None or region.rle is not None:
        if region.mask is not None:
            mask = np.asarray(region.mask, dtype=bool)
        else:
            h, w = region.rle["size"]
            mask = decode_rle(region.rle, h, w)
        rows, cols = np.nonzero(mask)
        if rows.size == 0:
            raise DataFormatError("region mask is empty, so it has no box; drop the region or fix its mask")
        return (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))
    raise DataFormatError("region has no geometry (no mask, polygon, RLE or box)")
