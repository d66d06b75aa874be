"""Region figures: a scene with numbered, coloured masks/boxes and a side panel of answers and references.

`render_regions` is the one entry point; line widths, label and font sizes grow with the scene, so a
4000 px DOTA scene stays readable when the figure is viewed scaled down to a screen.

Kept in one file (over 300 lines) on purpose: the layout, colours, text wrapping and drawing of the one figure this
module makes.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rsvlm_zoo.data.images import PIL_RGB_MODES, load_image, stretch_to_uint8
from rsvlm_zoo.data.schema import DataFormatError, Region

# Bright, mutually distinct colours that read well both over imagery and as text on the dark panel.
BASE_PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 64, 64),
    (40, 170, 255),
    (70, 230, 90),
    (255, 210, 30),
    (200, 100, 255),
    (255, 140, 20),
    (30, 235, 225),
    (255, 90, 200),
    (175, 240, 50),
    (140, 150, 255),
    (255, 175, 140),
    (110, 255, 190),
)
PANEL_BACKGROUND = (24, 24, 28)
NOTE_COLOUR = (215, 215, 215)
FILL_ALPHA = 0.35
FONT_FILES = ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
GOLDEN_RATIO = 0.618033988749895
MIN_LUMA = 120.0
ELLIPSIS = "\u2026"
# Legibility floor for panel and legend text, in pixels: long answers are cut with an ellipsis rather than drawn
# smaller than this.
MIN_FONT_SIZE = 12
# The figure stays within this many scene heights (at least MIN_FIGURE_LINES lines of text for small scenes).
MAX_HEIGHT_FACTOR = 2.0
MIN_FIGURE_LINES = 24
# Lines one region's block may take beside the scene once the text no longer fits there in full.
MAX_BESIDE_LINES = 3
# Narrowest legend column, in font sizes (about 25 characters).
MIN_COLUMN_EMS = 14

RegionLike = Any  # Region | HxW boolean mask (numpy/torch) | (x1, y1, x2, y2) box


def region_colour(index: int) -> tuple[int, int, int]:
    """Colour of region `index` (0-based): the base palette first, then golden-ratio hues, never repeating early.

    Colours past the base palette step the hue by the golden ratio (so neighbours differ strongly) and
    alternate saturation and brightness between rounds, so 100 regions still get 100 different colours.
    """
    if index < len(BASE_PALETTE):
        return BASE_PALETTE[index]
    k = index - len(BASE_PALETTE)
    hue = (0.07 + k * GOLDEN_RATIO) % 1.0
    saturation = (0.85, 0.6, 0.45)[k % 3]
    value = (1.0, 0.9)[(k // 3) % 2]
    rgb = [c * 255 for c in colorsys.hsv_to_rgb(hue, saturation, value)]
    luma = _luma(rgb)
    if luma < MIN_LUMA:  # lift dark hues (pure blue) towards white so they read on the dark panel
        t = (MIN_LUMA - luma) / (255 - luma)
        rgb = [c + (255 - c) * t for c in rgb]
    return (round(rgb[0]), round(rgb[1]), round(rgb[2]))


def _luma(rgb: Sequence[float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


@dataclass(frozen=True)
class FigureScale:
    """Sizes of the drawn elements for one scene.

    Attributes:
        font_size: Text size in pixels (panel and number labels).
        line_width: Outline width in pixels.
        padding: Gap around panel text and inside number labels.
        panel_width: Width of the side panel in pixels.
    """

    font_size: int
    line_width: int
    padding: int
    panel_width: int

    @classmethod
    def for_image(cls, width: int, height: int, scale: float = 1.0, panel_width: int | None = None) -> FigureScale:
        """Sizes growing linearly with the scene's longer side: side/48 px text, side/320 px lines (min 12 and 2)."""
        side = max(width, height)
        font = max(MIN_FONT_SIZE, round(side / 48 * scale))
        line = max(2, round(side / 320 * scale))
        pad = max(4, font // 3)
        panel = panel_width if panel_width is not None else max(width // 2, 24 * font)
        return cls(font_size=font, line_width=line, padding=pad, panel_width=panel)


@lru_cache(maxsize=32)
def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A scalable font of `size` pixels: DejaVu Sans when installed, else Pillow's built-in font.

    Falls back to Pillow's fixed-size bitmap font only when FreeType is unavailable.
    """
    for name in FONT_FILES:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or Pillow without FreeType
        return ImageFont.load_default()


def to_display_rgb(image: Any) -> np.ndarray:
    """Any image form -> HxWx3 uint8 for drawing.

    Accepts file paths (read with `load_image`), PIL images in any mode, and numpy/torch arrays that are
    HxW (grey), HxWx1, HxWx3 or HxWx4 (alpha dropped) of any numeric type; non-uint8 data is stretched
    per band like `load_image` does.

    Raises:
        TypeError: for an unsupported input type.
        ValueError: for an unsupported array shape.
    """
    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, Image.Image):
        if image.mode in PIL_RGB_MODES:
            return np.asarray(image.convert("RGB"))
        image = np.asarray(image)  # I;16, I, F: numeric data, stretched below
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # torch tensor, without importing torch
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a path, PIL image or array, got {type(image).__name__}")
    array = image[:, :, None] if image.ndim == 2 else image
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"image array must be HxW, HxWx1, HxWx3 or HxWx4, got shape {image.shape}")
    array = array[:, :, :3] if array.shape[2] == 4 else array
    if array.dtype != np.uint8:
        array = np.stack([stretch_to_uint8(array[:, :, c]) for c in range(array.shape[2])], axis=2)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array)


def _as_numpy(value: Any) -> Any:
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


def _is_box(value: Any) -> bool:
    array = np.asarray(value) if isinstance(value, (list, tuple, np.ndarray)) else None
    return array is not None and array.shape == (4,) and np.issubdtype(array.dtype, np.number)


@dataclass
class _Geometry:
    """One region resolved for drawing: a full-size mask, or a box."""

    mask: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None


def _resolve(region: RegionLike, index: int, height: int, width: int) -> _Geometry:
    """Turn one region input into a mask or a box at the scene's size, naming the region on errors."""
    region = _as_numpy(region)
    if isinstance(region, Region):
        if region.mask is not None:
            return _Geometry(mask=_checked_mask(region.mask, index, height, width))
        if region.has_mask_geometry:
            try:
                return _Geometry(mask=region.to_mask(height, width))
            except DataFormatError as err:
                raise ValueError(f"region {index}: {err}") from err
        if region.box is not None:
            return _Geometry(box=tuple(float(v) for v in region.box))  # type: ignore[arg-type]
        raise ValueError(f"region {index}: has no geometry (no mask, polygon, RLE or box)")
    if _is_box(region):
        return _Geometry(box=tuple(float(v) for v in np.asarray(region)))  # type: ignore[arg-type]
    if isinstance(region, np.ndarray) and region.ndim == 2:
        return _Geometry(mask=_checked_mask(region, index, height, width))
    raise TypeError(
        f"region {index}: expected a Region, an HxW mask or an (x1, y1, x2, y2) box, got {type(region).__name__}"
        + (f" of shape {region.shape}" if isinstance(region, np.ndarray) else "")
    )


def _checked_mask(mask: Any, index: int, height: int, width: int) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape != (height, width):
        size = f"{mask.shape[1]}x{mask.shape[0]}" if mask.ndim == 2 else f"of shape {mask.shape}"
        raise ValueError(
            f"region {index}: mask is {size} (w x h) but the image is {width}x{height}; "
            "masks must be given at the image's own size"
        )
    return mask.astype(bool)


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square erosion by `radius` pixels (outside the array counts as background), via running sums."""
    out = mask
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius + 1, radius)
        csum = np.pad(out.astype(np.int32), pad).cumsum(axis=axis)
        n = out.shape[axis]
        size = 2 * radius + 1
        upper = np.take(csum, np.arange(size, size + n), axis=axis)
        lower = np.take(csum, np.arange(0, n), axis=axis)
        out = (upper - lower) == size
    return out


def _draw_mask(canvas: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], line: int) -> tuple[int, int] | None:
    """Blend the mask's fill and draw its inner outline in place; returns the label anchor (x, y) or None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = mask[r0:r1, c0:c1]
    edge = crop & ~_erode(crop, line)
    colour_arr = np.asarray(colour, dtype=np.float32)
    view = canvas[r0:r1, c0:c1]
    fill = view[crop].astype(np.float32) * (1 - FILL_ALPHA) + colour_arr * FILL_ALPHA
    view[crop] = np.rint(fill).astype(np.uint8)
    view[edge] = colour_arr.astype(np.uint8)
    return int(c0), int(r0)


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    return (0, 0, 0) if _luma(background) > 140 else (255, 255, 255)


def _draw_label(
    draw: ImageDraw.ImageDraw,
    number: int,
    anchor: tuple[float, float],
    colour: tuple[int, int, int],
    font: Any,
    pad: int,
    size: tuple[int, int],
) -> None:
    """A filled tag with the region's number at `anchor` (top-left), kept inside the scene."""
    text = str(number)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    x = int(min(max(anchor[0], 0), max(size[0] - w, 0)))
    y = int(min(max(anchor[1], 0), max(size[1] - h, 0)))
    draw.rectangle((x, y, x + w - 1, y + h - 1), fill=colour)
    draw.text((x + pad - left, y + pad - top), text, fill=_text_colour(colour), font=font)


def wrap_text(text: str, font: Any, width: int, draw: ImageDraw.ImageDraw) -> list[str]:
    """Break `text` into lines no wider than `width` pixels; words longer than a line are split."""
    lines: list[str] = []
    for paragraph in str(text).splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if draw.textlength(candidate, font=font) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            current = ""
            while draw.textlength(word, font=font) > width and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and draw.textlength(word[:cut], font=font) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        lines.append(current)
    return lines


@dataclass(frozen=True)
class _Entry:
    """One block of panel text: a region's answer and reference (`number` set), or a note (`number` None)."""

    paragraphs: tuple[str, ...]
    colour: tuple[int, int, int]
    number: int | None = None


def _panel_entries(
    n: int,
    answers: Sequence[str | None] | None,
    references: Sequence[str | None] | None,
    notes: Sequence[str] | None,
) -> list[_Entry]:
    """Panel blocks: per region "N. answer" and "ref: ..." in the region's colour, then the notes in grey."""
    for name, values in (("answers", answers), ("references", references)):
        if values is not None and len(values) != n:
            raise ValueError(f"got {len(values)} {name} for {n} regions; give one per region (None to leave one out)")
    entries: list[_Entry] = []
    for k in range(n):
        answer = answers[k] if answers is not None else None
        reference = references[k] if references is not None else None
        if answer is None and reference is None:
            continue
        paragraphs = [f"{k + 1}. {answer if answer is not None else ''}".rstrip()]
        if reference is not None:
            paragraphs.append(f"ref: {reference}")
        entries.append(_Entry(tuple(paragraphs), region_colour(k), k + 1))
    entries += [_Entry((note,), NOTE_COLOUR) for note in notes or ()]
    return entries


def ellipsize(text: str, font: Any, width: int, draw: ImageDraw.ImageDraw, force: bool = False) -> tuple[str, bool]:
    """`text` on one line no wider than `width` pixels, cut at the end with an ellipsis when too long.

    Args:
        text: The text; runs of white space become one space.
        font: The font it is drawn with.
        width: Room in pixels.
        draw: Any drawing context (for measuring).
        force: End with an ellipsis even when the whole text fits (it continues elsewhere).

    Returns:
        The line and whether it was cut.
    """
    text = " ".join(str(text).split())
    if not force and draw.textlength(text, font=font) <= width:
        return text, False
    lo, hi = 0, len(text) + 1  # the longest prefix that fits with the ellipsis lies in [lo, hi)
    while lo < hi - 1:
        mid = (lo + hi) // 2
        if draw.textlength(text[:mid].rstrip() + ELLIPSIS, font=font) <= width:
            lo = mid
        else:
            hi = mid
    return text[:lo].rstrip() + ELLIPSIS, True


def _entry_lines(
    entry: _Entry, font: Any, width: int, draw: ImageDraw.ImageDraw, max_lines: int | None = None
) -> tuple[list[str], bool]:
    """The entry wrapped to `width`, cut to `max_lines` lines (the last one ending in an ellipsis) when given."""
    lines = [line for paragraph in entry.paragraphs for line in wrap_text(paragraph, font, width, draw)]
    if max_lines is None or len(lines) <= max_lines:
        return lines, False
    kept = lines[:max_lines]
    kept[-1] = ellipsize(kept[-1], font, width, draw, force=True)[0]
    return kept, True


@dataclass(frozen=True)
class FigureLayout:
    """Where the panel text of one figure went.

    Attributes:
        beside: Text blocks (regions and notes) in the panel beside the scene.
        legend: Text blocks in the legend under the scene (one line each).
        legend_columns: Columns of the legend (0 without a legend).
        font_size: Text size of the panel beside the scene, in pixels.
        legend_font_size: Text size of the legend, in pixels (never below `MIN_FONT_SIZE`).
        shortened: Blocks cut with an ellipsis to fit.
        max_height: The height the figure was kept within, in pixels.
    """

    beside: int
    legend: int
    legend_columns: int
    font_size: int
    legend_font_size: int
    shortened: int
    max_height: int


def max_figure_height(scene_height: int, font_size: int) -> int:
    """The figure's height limit: `MAX_HEIGHT_FACTOR` scene heights, at least `MIN_FIGURE_LINES` lines of text."""
    return max(round(MAX_HEIGHT_FACTOR * scene_height), MIN_FIGURE_LINES * _line_height(font_size))


def _line_height(font_size: int) -> int:
    return round(font_size * 1.25)


def _draw_blocks(
    panel: Image.Image,
    blocks: list[tuple[list[str], tuple[int, int, int]]],
    font: Any,
    origin: tuple[int, int],
    line_height: int,
    gap: int,
) -> None:
    draw = ImageDraw.Draw(panel)
    x, y = origin
    for lines, colour in blocks:
        for line in lines:
            draw.text((x, y), line, fill=colour, font=font)
            y += line_height
        y += gap


def _layout_panels(
    entries: list[_Entry], scale: FigureScale, scene_width: int, scene_height: int
) -> tuple[Image.Image, Image.Image | None, FigureLayout]:
    """The panel beside the scene and, when the text does not fit there, a multi-column legend under it.

    Every block wrapped in full goes beside the scene when the panel then stays within the height limit
    (`max_figure_height`). Otherwise the side panel takes whole blocks, each cut to `MAX_BESIDE_LINES` lines,
    down to the scene's foot, and the rest go to a legend under scene and panel: one line per block, in as many
    columns as the remaining height needs, the font shrinking towards `MIN_FONT_SIZE` (never below) before
    lines are cut with an ellipsis and before the figure widens to give each column `MIN_COLUMN_EMS` font sizes.
    The legend's first line says which regions it lists and how many blocks were shortened.
    """
    font = load_font(scale.font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pad, line_h = scale.padding, _line_height(scale.font_size)
    text_width = max(scale.panel_width - 2 * pad, 1)
    limit = max_figure_height(scene_height, scale.font_size)
    full = [_entry_lines(entry, font, text_width, probe)[0] for entry in entries]
    height = 2 * pad + sum(len(lines) * line_h + pad for lines in full)
    if height <= limit:
        side = Image.new("RGB", (scale.panel_width, max(scene_height, height)), PANEL_BACKGROUND)
        _draw_blocks(
            side, [(lines, e.colour) for lines, e in zip(full, entries, strict=True)], font, (pad, pad), line_h, pad
        )
        layout = FigureLayout(len(entries), 0, 0, scale.font_size, scale.font_size, 0, limit)
        return side, None, layout

    # Beside the scene: whole blocks down to the scene's foot, keeping one line for the "continued below" note.
    beside: list[tuple[list[str], tuple[int, int, int]]] = []
    shortened, y = 0, pad
    for entry in entries:
        lines, cut = _entry_lines(entry, font, text_width, probe, MAX_BESIDE_LINES)
        if y + len(lines) * line_h + pad + line_h + pad > scene_height:
            break
        beside.append((lines, entry.colour))
        shortened += cut
        y += len(lines) * line_h + pad
    rest = entries[len(beside) :]
    side = Image.new("RGB", (scale.panel_width, scene_height), PANEL_BACKGROUND)
    numbers = [e.number for e in rest if e.number is not None]
    span = f"regions {numbers[0]}-{numbers[-1]}" if numbers else "notes"
    beside_note = ellipsize(f"{span} continued below", font, text_width, probe)[0]
    _draw_blocks(side, beside + [([beside_note], NOTE_COLOUR)], font, (pad, pad), line_h, pad)

    legend, columns, legend_font_size, legend_cut = _render_legend(
        rest, scale, scene_width + scale.panel_width, limit - scene_height, span, shortened
    )
    layout = FigureLayout(
        len(beside), len(rest), columns, scale.font_size, legend_font_size, shortened + legend_cut, limit
    )
    return side, legend, layout


def _render_legend(
    entries: list[_Entry], scale: FigureScale, width: int, max_height: int, span: str, shortened_beside: int
) -> tuple[Image.Image, int, int, int]:
    """The legend: a header line, then one line per block in columns; returns it, its columns, font size, cuts."""
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    n = len(entries)
    font_size = scale.font_size
    while True:
        font = load_font(font_size)
        pad, line_h = max(4, font_size // 3), _line_height(font_size)
        rows = max(1, (max_height - 2 * pad - line_h - pad) // line_h)
        columns = max(1, -(-n // rows))
        min_column = MIN_COLUMN_EMS * font_size
        column_width = (width - pad) // columns
        if column_width >= min_column or font_size <= MIN_FONT_SIZE:
            break
        font_size = max(MIN_FONT_SIZE, font_size - max(1, font_size // 8))
    column_width = max(column_width, min_column)
    rows = -(-n // columns)
    width = max(width, pad + columns * column_width)
    lines = [ellipsize("  ·  ".join(entry.paragraphs), font, column_width - 2 * pad, probe) for entry in entries]
    cut = sum(c for _, c in lines)
    total = cut + shortened_beside
    header = f"{span}, one line each" + (f"; {total} shortened with {ELLIPSIS}" if total else "")
    height = 2 * pad + line_h + pad + rows * line_h
    legend = Image.new("RGB", (width, height), PANEL_BACKGROUND)
    draw = ImageDraw.Draw(legend)
    draw.text((pad, pad), ellipsize(header, font, width - 2 * pad, probe)[0], fill=NOTE_COLOUR, font=font)
    top = pad + line_h + pad
    for k, ((line, _), entry) in enumerate(zip(lines, entries, strict=True)):
        column, row = divmod(k, rows)
        draw.text((pad + column * column_width, top + row * line_h), line, fill=entry.colour, font=font)
    return legend, columns, font_size, cut


def render_regions(
    image: Any,
    regions: Sequence[RegionLike],
    answers: Sequence[str | None] | None = None,
    references: Sequence[str | None] | None = None,
    *,
    notes: Sequence[str] | None = None,
    scale: float = 1.0,
    panel_width: int | None = None,
    panel: bool | None = None,
) -> Image.Image:
    """Draw a scene with its regions numbered and coloured, and a side panel of answers and references.

    Masks (also polygons and RLE of a `Region`, rasterised) are filled semi-transparently and outlined; boxes
    are outlined. Region k (0-based) gets colour `region_colour(k)` and the tag "k+1" at its top-left. The panel
    to the right lists "N. answer" and "ref: reference" in the region's colour, then `notes` in grey, wrapped
    to the panel width. Text, tags and lines grow with the scene's size (see `FigureScale.for_image`).

    Args:
        image: Path, PIL image (any mode) or HxW / HxWxC array of any numeric type (see `to_display_rgb`).
        regions: Per region a `Region` (mask, polygons, RLE or box), an HxW boolean mask, or an
            (x1, y1, x2, y2) pixel box.
        answers: One answer per region (None leaves that region's answer out).
        references: One reference answer per region (None leaves it out).
        notes: Further lines under the region entries (e.g. a whole-image answer).
        scale: Multiplier for text, tag and line sizes.
        panel_width: Panel width in pixels (default: half the scene width, at least 24 characters' worth).
        panel: Draw the panel; None draws it only when there is text to show.

    Returns:
        An RGB image: the scene (padded below when the panel is taller) with the panel to its right.

    Raises:
        ValueError: a mask whose size differs from the image's (naming the region and both sizes), a
            region without geometry, or answers/references whose count differs from the regions'.
        TypeError: a region or image of an unsupported type.
    """
    rgb = to_display_rgb(image)
    height, width = rgb.shape[:2]
    sizes = FigureScale.for_image(width, height, scale, panel_width)
    entries = _panel_entries(len(regions), answers, references, notes)
    geometries = [_resolve(region, k, height, width) for k, region in enumerate(regions)]
    canvas = rgb.copy()
    anchors: list[tuple[float, float] | None] = []
    for k, geometry in enumerate(geometries):
        if geometry.mask is not None:
            anchors.append(_draw_mask(canvas, geometry.mask, region_colour(k), sizes.line_width))
        else:
            anchors.append(None)
    scene = Image.fromarray(canvas)
    draw = ImageDraw.Draw(scene)
    for k, geometry in enumerate(geometries):
        if geometry.box is not None:
            x1, y1, x2, y2 = geometry.box
            if x2 > x1 and y2 > y1:
                draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=region_colour(k), width=sizes.line_width)
                anchors[k] = (x1, y1)
    font = load_font(sizes.font_size)
    label_pad = max(2, sizes.padding // 2)
    for k, anchor in enumerate(anchors):
        if anchor is not None:
            _draw_label(draw, k + 1, anchor, region_colour(k), font, label_pad, (width, height))
    if panel is False or (panel is None and not entries):
        return scene
    side, legend, layout = _layout_panels(entries, sizes, width, height)
    top_height = max(height, side.height)
    figure_width = max(width + side.width, legend.width if legend is not None else 0)
    figure = Image.new(
        "RGB", (figure_width, top_height + (legend.height if legend is not None else 0)), PANEL_BACKGROUND
    )
    figure.paste(scene, (0, 0))
    figure.paste(side, (width, 0))
    if legend is not None:
        figure.paste(legend, (0, top_height))
    figure.info["layout"] = layout
    return figure
