"""Cutting large scenes into model-sized tiles: tile windows, regions clipped per tile, conversations re-indexed.

The rules, applied to each tile of a scene:

* **Windows.** Tiles are `tile_size` (h, w) scene pixels, `overlap` pixels apart from their neighbours; the
  last tile of a row/column is moved back to end at the scene's edge, so every tile is full size unless the
  scene itself is smaller than a tile (then that tile is the whole side). A scene is refused, from its
  declared size and before any window is made, when it is larger than the image pixel limit
  (`rsvlm_zoo.data.images.MAX_IMAGE_PIXELS`) or would give more than `MAX_TILES_PER_SCENE` tiles.
* **Cut objects.** A region is kept in a tile when at least `min_visible` of it lies inside the tile: its
  mask pixels when it has mask geometry (mask, RLE or polygons; the most precise the region carries, as
  `Region.to_mask` picks), otherwise its box area. A kept region is clipped to the tile: it gets the tile
  part of its mask (as a tile-sized mask) and the tightest box of that part, or its box clipped to the tile;
  category, text and attributes go along, plus `attributes["tile_visible"]` (the fraction inside).
  Kept regions are re-indexed 0..k-1 in their original order.
* **Conversations.** A conversation refers to regions through its `<mask><pos>` placeholders (placeholder j
  -> `region_refs[j]`, or region j). The tile keeps the conversation, with `region_refs` mapped to the new
  indices, only when every referenced region is kept; the placeholders and the words around them stay as
  written, so "region2<mask><pos>" still names the second placeholder. A conversation without placeholders
  on a sample with regions (MGIMM style: regions carried with the image, text about them) refers to all of
  its regions, so every region must be kept. Free text is never rewritten: a scene description giving
  positions ("top left") still speaks of the whole scene, so tile such data only when that is acceptable,
  or tile region annotations and build the conversation per tile (`InstructionSource`).
* **Dropped tiles.** A tile whose conversation cannot be kept, or, for a sample with regions, a tile left with
  none (unless `keep_empty`), raises `TileDropped`; data modules drop it and count it in
  `batch["dropped_tiles"]`.
* **Captions** describe the whole scene and are not given to tiles.

Kept in one file (over 300 lines) on purpose: the tile windows, the clipping of regions and the re-indexing of
conversations apply one rule set, and split apart they would drift.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from rsvlm_zoo.data.geometry import rasterise_polygons
from rsvlm_zoo.data.images import ImageWindow, pixel_limit_problem
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample
from rsvlm_zoo.data.validation import decode_counts, validate_region
from rsvlm_zoo.tokens import MASK_TOKEN

Window = tuple[int, int, int, int]

# Tiles one scene may give: a 20000 px DOTA scene in 224 px tiles overlapping by 64 px gives 125 x 125 = 15625.
MAX_TILES_PER_SCENE = 16384


class TileDropped(Exception):
    """A tile that the cut rule leaves without the regions its sample needs; not an error, it is counted."""


def as_size(value: int | tuple[int, int] | list[int], what: str = "tile_size") -> tuple[int, int]:
    """An int or (height, width) pair as a (height, width) tuple of positive ints.

    Raises:
        ValueError: when the value is not one or two positive integers.
    """
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{what} must be a positive int or [height, width], got {value!r}")
    return pair  # type: ignore[return-value]


def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the tiles along one axis of `length` pixels (the last tile ends at the edge)."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def axis_count(length: int, tile: int, overlap: int) -> int:
    """`len(axis_starts(length, tile, overlap))`, computed without making the list."""
    return 1 if length <= tile else -(-(length - tile) // (tile - overlap)) + 1


def check_scene(width: int, height: int, tile_size: tuple[int, int], overlap: int = 0) -> int:
    """The number of tiles of a width x height scene, after refusing scenes too large to tile.

    Only arithmetic on the declared size: nothing is allocated, so a damaged size (1e6 px) is refused at once.

    Raises:
        ValueError: when `overlap` is negative or not smaller than the tile.
        DataFormatError: a scene over the image pixel limit, or giving more than `MAX_TILES_PER_SCENE` tiles
            (the caller adds the record).
    """
    th, tw = tile_size
    if not 0 <= overlap < min(th, tw):
        raise ValueError(f"overlap must be >= 0 and smaller than the tile {tile_size}, got {overlap}")
    problem = pixel_limit_problem(width, height)
    if problem:
        raise DataFormatError(f"scene {problem}; or fix the annotation's width/height if they are wrong")
    count = axis_count(height, th, overlap) * axis_count(width, tw, overlap)
    if count > MAX_TILES_PER_SCENE:
        raise DataFormatError(
            f"a {width}x{height} scene gives {count} tiles of {th}x{tw} px (overlap {overlap}), over the cap of "
            f"{MAX_TILES_PER_SCENE} per scene; use larger tiles or less overlap, fix the annotation's width/height "
            "if they are wrong, or raise rsvlm_zoo.data.tiling.MAX_TILES_PER_SCENE"
        )
    return count


def tile_windows(width: int, height: int, tile_size: tuple[int, int], overlap: int = 0) -> list[Window]:
    """(x0, y0, x1, y1) windows covering a width x height scene, row by row.

    Raises:
        ValueError: when `overlap` is negative or not smaller than the tile.
        DataFormatError: when `check_scene` refuses the scene (too large, or too many tiles).
    """
    th, tw = tile_size
    check_scene(width, height, tile_size, overlap)
    return [
        (x0, y0, min(x0 + tw, width), min(y0 + th, height))
        for y0 in axis_starts(height, th, overlap)
        for x0 in axis_starts(width, tw, overlap)
    ]


def coarse_box(region: Region, height: int, width: int) -> tuple[float, float, float, float] | None:
    """A box containing the region, from its cheapest geometry (no rasterising); None when unknown.

    Used only to skip tiles that no region can reach; a region whose geometry is broken gives None (it may
    reach any tile), so its error surfaces when that tile is built.
    """
    try:
        validate_region(region, width, height)
        if region.mask is not None:
            rows, cols = np.nonzero(np.asarray(region.mask))
            if rows.size == 0:
                return None
            return float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)
        if region.rle is not None:
            x, y, w, h = (float(v) for v in mask_utils.toBbox(_coco_rle(region.rle, height, width)))
            return x, y, x + w, y + h
        if region.polygons:
            pts = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in region.polygons])
            lo, hi = pts.min(axis=0) - 1.0, pts.max(axis=0) + 1.0  # a pixel of margin for the rasteriser's rounding
            return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])
        if region.box is not None:
            return tuple(float(v) for v in region.box)  # type: ignore[return-value]
    except (DataFormatError, TypeError, ValueError):
        return None
    return None


def _coco_rle(rle: dict, height: int, width: int) -> dict:
    if list(rle.get("size", [])) != [height, width]:
        raise DataFormatError(f"RLE size {rle.get('size')} does not match the image size [{height}, {width}]")
    if isinstance(rle.get("counts"), list):
        return mask_utils.frPyObjects(rle, height, width)
    counts = rle["counts"]
    return {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def touches(box: tuple[float, float, float, float] | None, window: Window) -> bool:
    """Whether a (possibly unknown) region box overlaps the window by a positive area."""
    if box is None:
        return True
    x0, y0, x1, y1 = window
    return box[0] < x1 and box[2] > x0 and box[1] < y1 and box[3] > y0


@dataclass
class MaskPatch:
    """A region's full-scene mask restricted to a rectangle that holds all of it.

    Attributes:
        mask: Boolean patch.
        x0: Left edge of the patch in scene pixels.
        y0: Top edge of the patch in scene pixels.
    """

    mask: np.ndarray
    x0: int
    y0: int

    def crop(self, window: Window) -> np.ndarray:
        """The scene mask inside `window`, as a window-sized boolean array."""
        x0, y0, x1, y1 = window
        out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        ph, pw = self.mask.shape
        ax0, ay0 = max(x0, self.x0), max(y0, self.y0)
        ax1, ay1 = min(x1, self.x0 + pw), min(y1, self.y0 + ph)
        if ax1 > ax0 and ay1 > ay0:
            out[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0] = self.mask[
                ay0 - self.y0 : ay1 - self.y0, ax0 - self.x0 : ax1 - self.x0
            ]
        return out


def mask_patch(region: Region, height: int, width: int) -> MaskPatch:
    """The region's mask, exactly as `Region.to_mask` gives it, on a patch around the region.

    No scene-sized array is made for polygons and RLE: polygons are rasterised on their own bounding rectangle
    (one pixel of margin, clipped to the scene), which gives the same pixels as rasterising at the scene size,
    and RLEs are decoded from their runs over the columns they cover (`rle_patch`).

    Raises:
        DataFormatError: invalid geometry (`validate_region`), e.g. of the wrong size or fewer than 3 polygon points.
    """
    validate_region(region, width, height)
    if region.mask is None and region.rle is None and region.polygons:
        pts = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in region.polygons])
        x0 = min(width, max(0, math.floor(pts[:, 0].min()) - 1))
        y0 = min(height, max(0, math.floor(pts[:, 1].min()) - 1))
        x1 = max(x0, min(width, math.ceil(pts[:, 0].max()) + 2))
        y1 = max(y0, min(height, math.ceil(pts[:, 1].max()) + 2))
        shifted = [np.asarray(p, dtype=np.float64).reshape(-1, 2) - (x0, y0) for p in region.polygons]
        if x1 == x0 or y1 == y0:
            rasterise_polygons(shifted, 1, 1)  # still reject polygons with fewer than 3 points
            return MaskPatch(np.zeros((0, 0), bool), x0, y0)
        return MaskPatch(rasterise_polygons(shifted, y1 - y0, x1 - x0), x0, y0)
    if region.mask is None:
        return rle_patch(region.rle, height, width)  # type: ignore[arg-type]
    full = np.asarray(region.mask)
    if full.shape != (height, width):
        raise DataFormatError(
            f"mask is {full.shape[1] if full.ndim > 1 else '?'}x{full.shape[0]} but image is {width}x{height}; "
            "masks must be given at the image's own size"
        )
    full = full.astype(bool, copy=False)
    rows, cols = np.nonzero(full.any(axis=1))[0], np.nonzero(full.any(axis=0))[0]
    if rows.size == 0:
        return MaskPatch(np.zeros((0, 0), bool), 0, 0)
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return MaskPatch(full[y0:y1, x0:x1].copy(), x0, y0)


def rle_counts(rle: dict) -> np.ndarray:
    """Run lengths of a COCO RLE (uncompressed list, or COCO's compressed string decoded as `rleFrString` does)."""
    counts = rle["counts"]
    if isinstance(counts, list):
        return np.asarray(counts, dtype=np.int64)
    return decode_counts(counts)


def rle_patch(rle: dict, height: int, width: int) -> MaskPatch:
    """The mask of a COCO RLE on its bounding rectangle, decoded from the runs without a scene-sized array.

    Raises:
        DataFormatError: when the RLE's size is not (height, width) or its runs do not cover the image.
    """
    if list(rle.get("size", [])) != [height, width]:
        raise DataFormatError(
            f"RLE size {rle.get('size')} does not match the image size [{height}, {width}]; "
            "fix the annotation's 'size' or the image's height/width"
        )
    ends = np.cumsum(rle_counts(rle))
    if len(ends) and (ends[-1] > height * width or (np.diff(ends, prepend=0) < 0).any()):
        raise DataFormatError(f"RLE runs cover {int(ends[-1])} pixels, not h*w = {height * width}")
    starts = ends - np.diff(ends, prepend=0)
    on_starts, on_ends = starts[1::2], ends[1::2]  # runs alternate background, object, ... (column-major)
    keep = on_ends > on_starts
    on_starts, on_ends = on_starts[keep], on_ends[keep]
    if not len(on_starts):
        return MaskPatch(np.zeros((0, 0), bool), 0, 0)
    x0, x1 = int(on_starts[0] // height), int((on_ends[-1] - 1) // height) + 1
    base, n = x0 * height, (x1 - x0) * height
    edges = np.zeros(n + 1, np.int64)
    np.add.at(edges, on_starts - base, 1)
    np.add.at(edges, on_ends - base, -1)
    columns = (np.cumsum(edges[:-1]) > 0).reshape(x1 - x0, height).T  # (height, x1 - x0)
    rows = np.nonzero(columns.any(axis=1))[0]
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    return MaskPatch(columns[y0:y1].copy(), x0, y0)


def clip_region(region: Region, window: Window, height: int, width: int) -> tuple[Region | None, float]:
    """The part of `region` inside `window`, in window coordinates, and the fraction of the region that is there.

    Returns (None, 0.0) when nothing of it is inside.

    Raises:
        DataFormatError: broken geometry, an empty mask or a zero-area box (the caller adds the record).
    """
    x0, y0, x1, y1 = window
    if region.has_mask_geometry:
        patch = mask_patch(region, height, width)
        total = int(patch.mask.sum())
        if total == 0:
            raise DataFormatError("its mask is empty; fix or drop the region")
        inside = patch.crop(window)
        visible = int(inside.sum())
        if visible == 0:
            return None, 0.0
        rows, cols = np.nonzero(inside.any(axis=1))[0], np.nonzero(inside.any(axis=0))[0]
        box = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
        geometry = {"mask": inside, "box": box}
        fraction = visible / total
    elif region.box is not None:
        bx0, by0, bx1, by1 = (float(v) for v in region.box)
        area = (bx1 - bx0) * (by1 - by0)
        if bx1 <= bx0 or by1 <= by0:
            raise DataFormatError(f"box {region.box} has zero or negative area; fix or drop the region")
        cx0, cy0, cx1, cy1 = max(bx0, x0), max(by0, y0), min(bx1, x1), min(by1, y1)
        if cx1 <= cx0 or cy1 <= cy0:
            return None, 0.0
        geometry = {"box": (cx0 - x0, cy0 - y0, cx1 - x0, cy1 - y0)}
        fraction = (cx1 - cx0) * (cy1 - cy0) / area
    else:
        raise DataFormatError("region has no geometry (no mask, polygon, RLE or box)")
    attributes = {**region.attributes, "tile_visible": round(fraction, 4)}
    return Region(category=region.category, text=region.text, attributes=attributes, **geometry), fraction


def placeholder_refs(sample: Sample) -> list[int] | None:
    """The region each `<mask><pos>` of the conversation refers to, or None when the text has no placeholder.

    Raises:
        DataFormatError: when `region_refs` does not give one valid region per placeholder.
    """
    n = sum(t.text.count(MASK_TOKEN) for t in sample.conversation)
    if n == 0:
        return None
    refs = list(sample.region_refs) if sample.region_refs is not None else list(range(n))
    if len(refs) != n or any(not 0 <= r < len(sample.regions) for r in refs):
        raise DataFormatError(
            f"text has {n} {MASK_TOKEN} placeholders but the sample has {len(sample.regions)} regions "
            f"(refs {refs}); each placeholder needs exactly one region"
        )
    return refs


def tile_sample(
    sample: Sample,
    window: Window,
    tile_size: tuple[int, int],
    min_visible: float = 0.5,
    keep_empty: bool = False,
) -> Sample:
    """The tile `window` of `sample` under the module's rules (see the module docstring).

    Args:
        sample: The scene.
        window: (x0, y0, x1, y1) in scene pixels.
        tile_size: Nominal (height, width) of the tiles, recorded in `meta["tile"]`.
        min_visible: Keep a cut region when at least this fraction of it is inside the tile.
        keep_empty: Keep tiles left without regions even when the scene has regions.

    Raises:
        TileDropped: the tile loses a region its conversation refers to, or all of the scene's regions.
        DataFormatError: broken region geometry or region references, naming the record.
    """
    height, width = sample.height, sample.width
    kept: list[int] = []
    regions: list[Region] = []
    for k, region in enumerate(sample.regions):
        if not touches(coarse_box(region, height, width), window):
            continue
        try:
            clipped, fraction = clip_region(region, window, height, width)
        except DataFormatError as err:
            raise DataFormatError(f"{sample.where()}: region {k}: {err}") from err
        if clipped is not None and fraction >= min_visible:
            kept.append(k)
            regions.append(clipped)
    where = f"{sample.where()}, tile {window}"
    try:
        refs = placeholder_refs(sample)
    except DataFormatError as err:
        raise DataFormatError(f"{sample.where()}: {err}") from err
    if refs is not None:
        new_index = {old: new for new, old in enumerate(kept)}
        lost = sorted({r for r in refs if r not in new_index})
        if lost:
            raise TileDropped(f"{where}: the conversation refers to region(s) {lost}, cut off by this tile")
        region_refs = [new_index[r] for r in refs]
    else:
        region_refs = None
        if sample.conversation and len(kept) < len(sample.regions):
            raise TileDropped(
                f"{where}: the conversation is about all {len(sample.regions)} regions (no placeholders) "
                f"but only {len(kept)} are in this tile"
            )
    if sample.regions and not regions and not keep_empty:
        raise TileDropped(f"{where}: none of the {len(sample.regions)} regions is in this tile")
    x0, y0, x1, y1 = window
    image = sample.image
    if isinstance(image, ImageWindow):  # a tile of a tile: address the original scene
        ox, oy = image.window[:2]
        image, window = image.image, (x0 + ox, y0 + oy, x1 + ox, y1 + oy)
    out = copy.copy(sample)
    out.image = ImageWindow(image, window)
    out.width, out.height = x1 - x0, y1 - y0
    out.regions = regions
    out.conversation = list(sample.conversation)
    out.captions = []
    out.region_refs = region_refs
    out.sample_id = f"{sample.sample_id}@x{x0}y{y0}"
    out.meta = {
        **sample.meta,
        "tile": {
            "scene": sample.sample_id,
            "window": (x0, y0, x1, y1),
            "scene_size": (width, height),
            "size": tile_size,
        },
    }
    return out
