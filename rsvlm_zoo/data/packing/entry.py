"""The packing of one reader sample, run in the packing workers: decode, tile, resize, encode; skips returned.

`pack_entry((position, sample), settings)` returns the sample's LitData items (one under `squash`, one per kept
tile under `tile`) and the skips it met, as (kind, message) pairs the writer counts: a sample whose image or
geometry cannot be read gives no item and one skip (`missing images`, `unreadable images`, `invalid geometry`);
a tile the tiling rule drops is one `dropped tiles` skip.

Tiles are those of `TiledSource` around the one scene (same windows, same `tile_sample` rule), but
`tile_sample` works out a coarse box of every region for every window, validating its whole geometry each
time (an iSAID scene's RLE counts: most of the packing time). Here each region's coarse box is found once per
scene, and for a window a region cannot reach, `tile_sample` is given a plain box inside that coarse box, which
it leaves out just as it leaves out the region (see `_stand_in`): the tiles are the same.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from rsvlm_zoo.data.images import ImageReadError, ImageWindow, decode, load_image
from rsvlm_zoo.data.packing.items import encode_item
from rsvlm_zoo.data.packing.resize import resize_sample
from rsvlm_zoo.data.packing.settings import PackSettings
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample
from rsvlm_zoo.data.sources.base import SampleSource
from rsvlm_zoo.data.tiling import TileDropped, coarse_box, tile_sample, touches

Item = dict[str, Any]
Skip = tuple[str, str]


class _One(SampleSource):
    """A one-sample source (the scene being tiled)."""

    def __init__(self, sample: Sample) -> None:
        self.sample = sample

    def __len__(self) -> int:
        return 1

    def __getitem__(self, idx: int) -> Sample:
        return self.sample


def _scene(image: Any, cache: dict[str, np.ndarray]) -> np.ndarray:
    """The decoded image of a sample or tile; a tile's scene file is decoded once per entry (kept in `cache`)."""
    if isinstance(image, ImageWindow):
        if isinstance(image.image, np.ndarray):
            return image.load()
        key = str(image.image)
        if key not in cache:
            cache.clear()
            cache[key] = load_image(image.image)
        scene = cache[key]
        x0, y0, x1, y1 = image.window
        h, w = scene.shape[:2]
        if x1 > w or y1 > h:
            raise DataFormatError(f"{image}: the scene is {w}x{h}, smaller than the tile window")
        return np.ascontiguousarray(scene[y0:y1, x0:x1])
    return decode(image)


def image_name(image: Any) -> str:
    """The image file of a sample or tile (`<array>` for in-memory images)."""
    if isinstance(image, ImageWindow):
        image = image.image
    return "<array>" if isinstance(image, np.ndarray) else str(image)


def _stand_in(region: Region, box: tuple[float, float, float, float] | None, height: int, width: int) -> Region | None:
    """A box-only region `tile_sample` leaves out of every window that `box` (the region's coarse box) misses.

    The box is `box` clipped to the scene, so it misses whatever `box` misses, and it is used only when
    `coarse_box` gives it back unchanged (a valid box); otherwise None (the region itself is always used).
    """
    if box is None:
        return None
    clipped = (max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]), min(float(height), box[3]))
    stand = Region(box=clipped)
    return stand if coarse_box(stand, height, width) == clipped else None


def _tiles(scene: Sample, settings: PackSettings, skips: list[Skip]) -> list[Sample]:
    """The kept tiles of `scene` (`TiledSource`'s, see the module docstring); dropped tiles go to `skips`."""
    from rsvlm_zoo.data.sources.tiled import TiledSource

    tiler = TiledSource(_One(scene), settings.input_size, settings.tile_overlap, settings.tile_min_visible)
    height, width = scene.height, scene.width
    boxes = [coarse_box(r, height, width) for r in scene.regions]
    stand_ins = [_stand_in(r, b, height, width) for r, b in zip(scene.regions, boxes, strict=True)]
    tiles = []
    for k, (_, window) in enumerate(tiler.index):
        try:
            if window is None:
                tiles.append(tiler[k])  # raises the scene's error (size unreadable or too large)
                continue
            view = copy.copy(scene)
            view.regions = [
                r if s is None or touches(b, window) else s
                for r, b, s in zip(scene.regions, boxes, stand_ins, strict=True)
            ]
            tiles.append(tile_sample(view, window, tiler.tile_size, tiler.min_visible))
        except TileDropped as err:
            skips.append(("dropped tiles", str(err)))
    return tiles


def pack_entry(entry: tuple[int, Sample], settings: PackSettings) -> tuple[list[Item], list[Skip]]:
    """(LitData items, skips) of one reader sample at `position` (see the module docstring)."""
    position, scene = entry
    size = settings.input_size
    skips: list[Skip] = []
    cache: dict[str, np.ndarray] = {}
    try:
        parts = _tiles(scene, settings, skips) if settings.image_policy == "tile" else [scene]
        items = []
        for sample in parts:
            image = _scene(sample.image, cache)
            h, w = image.shape[:2]
            if (h, w) != (sample.height, sample.width):
                raise DataFormatError(
                    f"{sample.where()}: image is {w}x{h} but the annotation says {sample.width}x{sample.height}"
                )
            out_h, out_w = (size, size) if settings.image_policy == "squash" else (h, w)
            resized = resize_sample(sample, image, out_h, out_w)
            provenance = {"source": str(scene.source), "record": position, "image": image_name(scene.image)}
            items.append(encode_item(resized, provenance))
    except ImageReadError as err:
        missing = not Path(image_name(scene.image)).is_file()
        return [], [*skips, ("missing images" if missing else "unreadable images", str(err))]
    except (DataFormatError, ValueError, OSError) as err:
        return [], [*skips, ("invalid geometry", f"{scene.where()}: {err}")]
    return items, skips


__all__ = ["image_name", "pack_entry"]
