"""TiledSource: every scene of another source cut into model-sized tiles, one sample per tile."""

from __future__ import annotations

import logging

from rsvlm_zoo.data.schema import DataFormatError, Sample
from rsvlm_zoo.data.sources.base import SampleSource
from rsvlm_zoo.data.tiling import Window, as_size, coarse_box, tile_sample, tile_windows, touches

log = logging.getLogger(__name__)


def tile_source(
    source: SampleSource, tile_size: int | tuple[int, int], overlap: int = 0, min_visible: float = 0.5
) -> SampleSource:
    """`source` cut into tiles: its own `tiled(...)` when it has one, else a `TiledSource` around it.

    Wrappers such as `InstructionSource` and `MixedSource` tile what they wrap, so text is built per tile.
    """
    tiled = getattr(source, "tiled", None)
    if tiled is not None:
        return tiled(tile_size, overlap, min_visible)
    return TiledSource(source, tile_size, overlap, min_visible)


class TiledSource(SampleSource):
    """Tiles of the scenes of `source`, for scenes larger than the model input (e.g. 4000 px DOTA scenes).

    The rules for windows, cut objects, re-indexing and conversations are those of `rsvlm_zoo.data.tiling`.
    The index (scene, window) is built on first use from the scene sizes (image headers when the annotation
    has none) and the regions' boxes (no pixels decoded, no mask rasterised), leaving out windows no region
    reaches when the scene has regions. Each tile's image is an `ImageWindow`, decoded when the sample is
    processed and never cached. `source[i]` raises `TileDropped` for a tile that the cut rule leaves without
    the regions it needs (the data modules drop and count those), and `DataFormatError` for a scene whose size
    cannot be read, that is too large to tile (over the image pixel limit or `MAX_TILES_PER_SCENE` tiles, see
    `rsvlm_zoo.data.tiling.check_scene`; refused from its declared size, before any window is made) or whose
    geometry is broken (error or counted skip, as `on_bad_sample` says).

    Args:
        source: The scenes.
        tile_size: Tile (height, width) in scene pixels, or one int for square tiles.
        overlap: Pixels shared by neighbouring tiles.
        min_visible: Keep a cut region in a tile when at least this fraction of it (mask pixels, else box
            area) lies inside; must be in (0, 1].
        keep_empty: Also give tiles without regions for scenes that have regions.
    """

    def __init__(
        self,
        source: SampleSource,
        tile_size: int | tuple[int, int],
        overlap: int = 0,
        min_visible: float = 0.5,
        keep_empty: bool = False,
    ) -> None:
        self.tile_size = as_size(tile_size)
        tile_windows(1, 1, self.tile_size, overlap)  # validates the overlap
        if not 0.0 < min_visible <= 1.0:
            raise ValueError(f"min_visible must be in (0, 1], got {min_visible}")
        self.source, self.overlap, self.min_visible, self.keep_empty = source, overlap, min_visible, keep_empty
        self._index: list[tuple[int, Window | None]] | None = None
        self._errors: dict[int, str] = {}

    def _build_index(self) -> list[tuple[int, Window | None]]:
        index: list[tuple[int, Window | None]] = []
        for i in range(len(self.source)):
            sample = self.source[i]
            try:
                width, height = sample.width, sample.height
                windows = tile_windows(width, height, self.tile_size, self.overlap)
            except DataFormatError as err:  # unreadable header or a scene too large to tile: the error
                self._errors[i] = str(err)  # surfaces when the entry is used
                index.append((i, None))
                continue
            if sample.regions and not self.keep_empty:
                boxes = [coarse_box(r, height, width) for r in sample.regions]
                windows = [w for w in windows if any(touches(b, w) for b in boxes)]
            index += [(i, w) for w in windows]
        log.info("%d scenes -> %d tiles of %s px", len(self.source), len(index), self.tile_size)
        return index

    @property
    def index(self) -> list[tuple[int, Window | None]]:
        """(scene index, window) per tile; window None marks a scene whose size could not be read or was refused."""
        if self._index is None:
            self._index = self._build_index()
        return self._index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: int) -> Sample:
        scene, window = self.index[idx]
        sample = self.source[scene]
        if window is None:
            raise DataFormatError(f"{sample.where()}: {self._errors[scene]}")
        return tile_sample(sample, window, self.tile_size, self.min_visible, self.keep_empty)

    def control(self) -> SampleSource | None:
        """The inner source's control, tiled alike (same index, so tile k shows the same window)."""
        inner = self.source.control()
        if inner is None:
            return None
        other = TiledSource(inner, self.tile_size, self.overlap, self.min_visible, self.keep_empty)
        other._index, other._errors = self._index, self._errors
        return other

    def tiled(self, tile_size: int | tuple[int, int], overlap: int = 0, min_visible: float = 0.5) -> SampleSource:
        """This source itself when the settings agree (it is already tiled).

        Raises:
            ValueError: when asked for other tile settings than this source's.
        """
        asked = (as_size(tile_size), overlap, min_visible)
        if asked != (self.tile_size, self.overlap, self.min_visible):
            raise ValueError(
                f"source is already tiled with tile_size={self.tile_size}, overlap={self.overlap}, "
                f"min_visible={self.min_visible}, but tiling with {asked} was asked; give the data module the "
                "same settings or pass the untiled source"
            )
        return self
