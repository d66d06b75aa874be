"""The one sample schema every reader produces and every dataset consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rsvlm_zoo.data.geometry import region_to_box, region_to_mask
from rsvlm_zoo.data.validation import DataFormatError

__all__ = ["DataFormatError", "Region", "Role", "Sample", "Turn"]

Role = Literal["human", "gpt"]


@dataclass
class Region:
    """One annotated region of a scene, in the scene's own pixel coordinates.

    Exactly the geometry that the source file provides is kept (mask, polygon, RLE or box);
    `to_mask` and `to_box` derive the others on demand so readers never rasterise eagerly.

    Attributes:
        mask: Boolean HxW array at the scene's size.
        polygons: Polygons as float arrays of shape (N, 2) holding (x, y) pixel vertices.
        rle: COCO run-length encoding (`{"size": [h, w], "counts": str | list[int]}`).
        box: Axis-aligned box (x1, y1, x2, y2) in pixels.
        category: Class name, when the source has one.
        text: Free-text description of the region (referring expression, caption, attributes).
        attributes: Further per-region facts (e.g. `difficult`, `iscrowd`, `angle`, synthetic attributes).
    """

    mask: np.ndarray | None = None
    polygons: list[np.ndarray] | None = None
    rle: dict[str, Any] | None = None
    box: tuple[float, float, float, float] | None = None
    category: str | None = None
    text: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def has_mask_geometry(self) -> bool:
        """Whether a pixel mask can be derived (mask, polygons or RLE)."""
        return self.mask is not None or bool(self.polygons) or self.rle is not None

    def to_mask(self, height: int, width: int) -> np.ndarray:
        """Rasterise the region to a boolean (height, width) mask.

        A region that only has a box is rasterised as the filled box.

        Raises:
            DataFormatError: when the stored mask or RLE has another size than the scene.
        """
        return region_to_mask(self, height, width)

    def to_box(self) -> tuple[float, float, float, float]:
        """Axis-aligned (x1, y1, x2, y2) pixel box, from the box or the tightest box of the mask geometry."""
        return region_to_box(self)


@dataclass
class Turn:
    """One turn of a conversation: `human` asks, `gpt` answers.

    Region placeholders inside `text` are written `<mask><pos>` (one per region reference, in
    order); the image placeholder is `<image>`.
    """

    role: Role
    text: str


@dataclass
class Sample:
    """One scene with its regions and its text.

    Attributes:
        image: Path of the image file, an HxWxC uint8 array for generated scenes, or an
            `rsvlm_zoo.data.images.ImageWindow` (a tile of a scene, decoded on use).
        width: Scene width in pixels.
        height: Scene height in pixels.
        regions: Annotated regions.
        conversation: Instruction turns, alternating human/gpt, starting with human.
        captions: Reference captions (caption datasets).
        region_refs: For each `<mask><pos>` occurrence in the conversation, the index of the region
            it refers to; None means occurrence k refers to region k.
        sample_id: Identifier unique within its source (image id, file name, running index).
        source: The annotation file (or generator) the sample came from, for error messages.
        split: Split name when the source defines one (train/val/test).
        meta: Anything else a task needs to score the answer.
    """

    image: str | Path | np.ndarray
    width: int
    height: int
    regions: list[Region] = field(default_factory=list)
    conversation: list[Turn] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    region_refs: list[int] | None = None
    sample_id: str = ""
    source: str = ""
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def where(self) -> str:
        """Short location string for error messages: `record <id> in <source>`."""
        return f"record {self.sample_id!r} in {self.source or '<memory>'}"
