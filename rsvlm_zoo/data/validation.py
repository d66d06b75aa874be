"""Region geometry validation: what every reader, the checker and the training path accept.

Geometry is checked here before any library sees it (pycocotools segfaults on polygon coordinates beyond
~4.3e8, and NaN boxes make tiling allocate without bound). One function, `validate_region`, serves the readers
(when a record is read), `rsvlm data check`, `describe`'s inputs and the rasterisers, so what the check passes
also trains.

The rules:

- boxes: four finite numbers;
- polygons: at least 3 finite (x, y) points each;
- RLE: `size` of two positive integers equal to the image's (h, w), `counts` of non-negative integers (a list,
  or COCO's compressed string) summing to h * w;
- masks: a 2-D array at the image's size;
- every coordinate within `MARGIN` image sizes plus `MARGIN_PIXELS` of the image (x in [-2 w - 64, 3 w + 64]);
  while the image size is not known yet, within `MAX_COORDINATE` pixels.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

MARGIN = 2.0  # coordinates may lie this many image widths/heights outside the image (clipped objects)
MARGIN_PIXELS = 64.0  # plus this many pixels, so small images and tiles keep some slack too
MAX_COORDINATE = 2.0**20  # bound on any coordinate while the image size is unknown (1,048,576 px)


class DataFormatError(ValueError):
    """A record in an annotation file cannot be used; the message names file, record and fix."""


class RegionGeometry(Protocol):
    """What geometry checks and rasterisers read of a region (`rsvlm_zoo.data.schema.Region` is one)."""

    mask: np.ndarray | None
    polygons: list[np.ndarray] | None
    rle: dict[str, Any] | None
    box: tuple[float, float, float, float] | None


def _bounds(size: int | None) -> tuple[float, float]:
    if size:
        return -MARGIN * size - MARGIN_PIXELS, (1.0 + MARGIN) * size + MARGIN_PIXELS
    return -MAX_COORDINATE, MAX_COORDINATE


def _check_range(values: np.ndarray, axis: str, size: int | None, what: str) -> None:
    lo, hi = _bounds(size)
    if values.size and (values.min() < lo or values.max() > hi):
        extent = f"the image's {axis} extent {size}" if size else "any image"
        bad = values.min() if values.min() < lo else values.max()
        raise DataFormatError(
            f"{what} has {axis} coordinate {bad:.6g}, far outside {extent} (allowed [{lo:.6g}, {hi:.6g}]); "
            "check the coordinate convention (pixels vs normalised, xyxy vs xywh) or drop the region"
        )


def validate_box(box: Any, width: int | None, height: int | None, what: str = "box") -> tuple[float, ...]:
    """Four finite numbers within the margin of the image; returns them as floats.

    Raises:
        DataFormatError: naming what is wrong with the box.
    """
    try:
        values = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise DataFormatError(f"{what} {str(box)[:60]} is not a list of 4 numbers") from err
    if values.size != 4:
        raise DataFormatError(f"{what} has {values.size} values; boxes are [x1, y1, x2, y2]")
    if not np.isfinite(values).all():
        raise DataFormatError(f"{what} {values.tolist()} holds NaN or infinite values; fix or drop the region")
    _check_range(values[0::2], "x", width, what)
    _check_range(values[1::2], "y", height, what)
    return tuple(float(v) for v in values)


def validate_polygons(polygons: Any, width: int | None, height: int | None, what: str = "polygon") -> None:
    """Each polygon: at least 3 finite (x, y) points within the margin of the image.

    Raises:
        DataFormatError: naming the polygon and what is wrong with it.
    """
    if not isinstance(polygons, (list, tuple)):
        raise DataFormatError(f"{what}s must be a list of (N, 2) point arrays, got {type(polygons).__name__}")
    for k, poly in enumerate(polygons):
        try:
            pts = np.asarray(poly, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataFormatError(f"{what} {k} is not an array of numbers") from err
        if pts.ndim != 2 or pts.shape[1] != 2:
            if pts.ndim == 1 and pts.size % 2 == 0:
                pts = pts.reshape(-1, 2)
            else:
                raise DataFormatError(f"{what} {k} has shape {pts.shape}; polygons are (N, 2) x, y points")
        if len(pts) < 3:
            raise DataFormatError(f"{what} {k} has {len(pts)} point(s); a polygon needs at least 3 (fix or drop it)")
        if not np.isfinite(pts).all():
            raise DataFormatError(f"{what} {k} holds NaN or infinite coordinates; fix or drop the region")
        _check_range(pts[:, 0], "x", width, f"{what} {k}")
        _check_range(pts[:, 1], "y", height, f"{what} {k}")


def _int_like(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _int_runs(counts: list[Any] | tuple[Any, ...]) -> np.ndarray | None:
    """`counts` as int64 when every entry is a plain Python int that fits, else None (the checked slow path).

    The type test runs at C speed (`map(type, ...)`), so a scene's RLE costs microseconds instead of a Python
    loop per run; anything else (numpy integers, floats, bools, huge ints) takes the path that names the bad entry.
    """
    if not set(map(type, counts)) <= {int}:
        return None
    try:
        return np.fromiter(counts, dtype=np.int64, count=len(counts))
    except OverflowError:
        return None


def rle_runs(rle: Any, height: int | None, width: int | None, what: str = "RLE") -> np.ndarray:
    """The run lengths of a validated COCO RLE (see the module docstring for the rules).

    Raises:
        DataFormatError: naming what is wrong with the RLE.
    """
    if not isinstance(rle, dict):
        raise DataFormatError(f"{what} must be a dict with 'size' and 'counts', got {type(rle).__name__}")
    size, counts = rle.get("size"), rle.get("counts")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_int_like(v) and v > 0 for v in size)):
        raise DataFormatError(f"{what} 'size' must be [height, width] as two positive integers, got {str(size)[:60]}")
    h, w = int(size[0]), int(size[1])
    if height and width and (h, w) != (int(height), int(width)):
        raise DataFormatError(
            f"{what} size [{h}, {w}] differs from the image size [{height}, {width}] (h, w); fix either"
        )
    if isinstance(counts, (list, tuple)):
        runs = _int_runs(counts)
        if runs is None:
            bad = next((c for c in counts if not _int_like(c)), None)
            if bad is not None:
                raise DataFormatError(f"{what} counts must be integers, found {bad!r}")
            if any(c > h * w for c in counts):
                raise DataFormatError(f"{what} counts hold a run longer than any image; the RLE is corrupt")
            runs = np.asarray(counts, dtype=np.int64)
        if runs.size and int(runs.min()) < 0:
            raise DataFormatError(f"{what} counts hold a negative run length; the RLE is corrupt")
        if runs.size and int(runs.max()) > h * w:
            raise DataFormatError(f"{what} counts hold a run longer than any image; the RLE is corrupt")
    elif isinstance(counts, (str, bytes)):
        runs = decode_counts(counts, what)
    else:
        raise DataFormatError(f"{what} 'counts' must be a list of integers or a compressed string")
    total = int(runs.sum()) if runs.size else 0
    if total != h * w:
        raise DataFormatError(f"{what} counts sum to {total}, not h*w = {h * w}; the RLE is truncated or corrupt")
    return runs


def decode_counts(counts: str | bytes, what: str = "RLE") -> np.ndarray:
    """COCO's compressed RLE string to run lengths, as pycocotools' `rleFrString` reads it, vectorised.

    Each run is a group of 6-bit characters (offset 48) holding 5 bits each, least significant first, with bit
    0x20 saying another character follows and bit 0x10 of the last one the sign; from the fourth run on, each
    run is stored as its difference to the run two before it.

    Raises:
        DataFormatError: a character outside the alphabet, a string that ends inside a run, a run wider than
            60 bits, or a negative run length.
    """
    try:
        data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    except UnicodeEncodeError as err:
        raise DataFormatError(f"{what} counts string holds non-ASCII characters; the RLE is corrupt") from err
    if not data:
        return np.zeros(0, dtype=np.int64)
    chars = np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 48
    outside = (chars < 0) | (chars >= 64)
    if outside.any():
        bad = data[int(np.argmax(outside))]
        raise DataFormatError(f"{what} counts string holds byte {bytes([bad])!r}, outside COCO's alphabet")
    more = (chars & 0x20) != 0
    if more[-1]:
        raise DataFormatError(f"{what} counts string ends inside a number; the RLE is truncated")
    last = np.flatnonzero(~more)
    first = np.concatenate(([0], last[:-1] + 1))
    lengths = last - first + 1
    if int(lengths.max()) > 12:
        raise DataFormatError(f"{what} counts string holds a run longer than any image; the RLE is corrupt")
    position = np.arange(len(chars)) - np.repeat(first, lengths)
    values = np.add.reduceat((chars & 0x1F) << (5 * position), first)
    negative = (chars[last] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * lengths[negative])
    if len(values) and int(np.abs(values).max()) >= (1 << 62) // len(values):
        raise DataFormatError(f"{what} counts string holds a run longer than any image; the RLE is corrupt")
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    if (runs < 0).any():
        raise DataFormatError(f"{what} counts decode to a negative run length; the RLE is corrupt")
    return runs


def validate_mask(mask: Any, width: int | None, height: int | None, what: str = "mask") -> None:
    """A 2-D array, at the image's size when that is known.

    Raises:
        DataFormatError: for another shape.
    """
    shape = np.shape(mask)
    if len(shape) != 2:
        raise DataFormatError(f"{what} has shape {shape}; masks are 2-D (height, width) arrays")
    if width and height and shape != (int(height), int(width)):
        raise DataFormatError(
            f"{what} is {shape[1]}x{shape[0]} but image is {width}x{height}; masks must be given at the image's "
            "own size"
        )


def validate_size(width: Any, height: Any, what: str = "image size") -> None:
    """Width and height, when given, are positive whole numbers.

    Raises:
        DataFormatError: for zero, negative, fractional, non-finite or non-numeric sizes.
    """
    for name, value in (("width", width), ("height", height)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise DataFormatError(f"{what}: {name} {value!r} is not a number")
        if not math.isfinite(float(value)) or float(value) <= 0 or float(value) != int(value):
            raise DataFormatError(f"{what}: {name} {value!r} must be a positive whole number of pixels")


def validate_region(region: RegionGeometry, width: int | None, height: int | None) -> None:
    """Check every geometry a region carries against the rules in the module docstring.

    Args:
        region: The region.
        width: Image width in pixels, or None while unknown (then only the image-independent rules apply).
        height: Image height in pixels, or None while unknown.

    Raises:
        DataFormatError: naming the geometry and what is wrong with it.
    """
    if region.mask is not None:
        validate_mask(region.mask, width, height)
    if region.polygons is not None:
        validate_polygons(region.polygons, width, height)
    if region.rle is not None:
        rle_runs(region.rle, height, width)
    if region.box is not None:
        validate_box(region.box, width, height)
