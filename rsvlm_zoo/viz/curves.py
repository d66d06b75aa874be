"""Line plots of training curves drawn with Pillow only (no plotting library needed).

A loss series spanning a decade or more is drawn on a log axis (a fast early drop would otherwise flatten the rest
of the run against the bottom), and a long series gets a smoothed line (exponential moving average) drawn over its
raw values in a lighter tint. Series with several points (validation metrics after each epoch) are joined by a line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from PIL import Image, ImageDraw

from rsvlm_zoo.viz.regions import load_font, region_colour

BACKGROUND = (255, 255, 255)
AXIS_COLOUR = (60, 60, 60)
GRID_COLOUR = (225, 225, 225)
TEXT_COLOUR = (20, 20, 20)
CURVE_COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207))

Series = Sequence[tuple[float, float]]

# A loss series whose largest value is at least this many times its smallest gets a log axis.
LOG_RATIO = 10.0
# Series with more points than this get a smoothed line over the raw one.
SMOOTH_MIN_POINTS = 20
# Share of the way from the curve's colour to white for the raw line under a smoothed one.
RAW_TINT = 0.6


def y_axis_scale(name: str, values: Sequence[float]) -> str:
    """`"log"` for a positive loss series (name holding "loss") spanning at least `LOG_RATIO`, else `"linear"`."""
    if "loss" not in name.lower() or not values or min(values) <= 0:
        return "linear"
    return "log" if max(values) >= LOG_RATIO * min(values) else "linear"


def smoothed(values: Sequence[float], span: int | None = None) -> list[float]:
    """Exponential moving average of `values`, weight 2 / (span + 1); span defaults to len // 100 (at least 3).

    The average is bias-corrected (divided by the weights' sum), so it starts at the first value.
    """
    span = span if span is not None else max(3, len(values) // 100)
    alpha = 2.0 / (span + 1.0)
    out, average, weight = [], 0.0, 0.0
    for value in values:
        average = (1 - alpha) * average + alpha * value
        weight = (1 - alpha) * weight + alpha
        out.append(average / weight)
    return out


def _tint(colour: tuple[int, int, int], share: float) -> tuple[int, int, int]:
    r, g, b = (round(c + (255 - c) * share) for c in colour)
    return (r, g, b)


def curve_colour(index: int) -> tuple[int, int, int]:
    """Colour of the `index`-th curve: dark enough to read on white."""
    if index < len(CURVE_COLOURS):
        return CURVE_COLOURS[index]
    r, g, b = region_colour(index)
    return (r * 2 // 3, g * 2 // 3, b * 2 // 3)


def _format(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.2e}"


def _finite(points: Series) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points if math.isfinite(float(x)) and math.isfinite(float(y))]


def _plot_one(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    name: str,
    points: list[tuple[float, float]],
    colour: tuple[int, int, int],
    font_size: int,
) -> str:
    """One titled panel: axes frame, min/mid/max y ticks, first/last x ticks, the curve and its points.

    Returns:
        The y axis scale used, "log" or "linear" (see `y_axis_scale`).
    """
    font = load_font(font_size)
    left, top, right, bottom = box
    ys = [p[1] for p in points]
    axis = y_axis_scale(name, ys)
    if points:
        smooth = ", smoothed line over raw" if len(points) > SMOOTH_MIN_POINTS else ""
        title = f"{name}  (last {_format(ys[-1])}, {len(points)} points{', log axis' if axis == 'log' else ''}{smooth})"
    else:
        title = f"{name}  (no values)"
    draw.text((left, top), title, fill=TEXT_COLOUR, font=font)
    label_w = int(draw.textlength("-0.0000e+00", font=font)) + font_size // 2
    x0, y0, x1, y1 = left + label_w, top + int(font_size * 1.6), right - font_size, bottom - int(font_size * 1.6)
    draw.rectangle((x0, y0, x1, y1), outline=AXIS_COLOUR, width=1)
    if not points:
        return axis
    xs = [p[0] for p in points]
    x_lo, x_hi = min(xs), max(xs)

    def forward(y: float) -> float:
        return math.log10(y) if axis == "log" else y

    def inverse(v: float) -> float:
        return 10.0**v if axis == "log" else v

    y_lo, y_hi = value_range(forward(min(ys)), forward(max(ys)), axis)
    x_span = (x_hi - x_lo) or 1.0

    def to_px(x: float, y: float) -> tuple[float, float]:
        px = x0 + (x - x_lo) / x_span * (x1 - x0) if x_hi > x_lo else (x0 + x1) / 2
        return px, y1 - (forward(y) - y_lo) / (y_hi - y_lo) * (y1 - y0)

    for frac in (0.0, 0.5, 1.0):
        value = inverse(y_lo + frac * (y_hi - y_lo))
        py = y1 - frac * (y1 - y0)
        draw.line((x0, py, x1, py), fill=GRID_COLOUR, width=1)
        text = _format(value)
        tx = x0 - draw.textlength(text, font=font) - font_size // 3
        draw.text((tx, py - font_size // 2), text, TEXT_COLOUR, font)
    for x, anchor_x in ((x_lo, x0), (x_hi, x1)):
        text = f"step {int(x)}" if float(x).is_integer() else _format(x)
        width = draw.textlength(text, font=font)
        draw.text((max(x0, min(anchor_x - width / 2, x1 - width)), y1 + font_size // 3), text, TEXT_COLOUR, font)
    pixels = [to_px(x, y) for x, y in points]
    if len(points) > SMOOTH_MIN_POINTS:
        draw.line(pixels, fill=_tint(colour, RAW_TINT), width=1)
        trend = [inverse(v) for v in smoothed([forward(y) for y in ys])]  # averaged on the axis' own scale
        line = [to_px(x, y) for x, y in zip(xs, trend, strict=True)]
        draw.line(line, fill=colour, width=2, joint="curve")
    elif len(pixels) > 1:
        draw.line(pixels, fill=colour, width=2, joint="curve")
    if len(pixels) <= SMOOTH_MIN_POINTS:
        r = 3
        for px, py in pixels:
            draw.ellipse((px - r, py - r, px + r, py + r), fill=colour)
    return axis


def value_range(lo: float, hi: float, axis: str) -> tuple[float, float]:
    """The y range drawn for a series whose values span [lo, hi] on the axis' scale (log10 for a log axis).

    A series with one distinct value (e.g. a single validation) has no span of its own: a linear axis then runs
    from zero to the value, so an accuracy of 0.99 is drawn on 0-0.99, not on a range past 1; on a log axis, or
    for a value of zero, the range reaches half the value's size (or 0.5) either side.
    """
    if hi > lo:
        return lo, hi
    if axis == "linear" and lo != 0.0:
        return min(0.0, lo), max(0.0, hi)
    return lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)


def plot_curves(
    series: Mapping[str, Series], width: int = 900, panel_height: int = 260, font_size: int = 14
) -> Image.Image:
    """Plot each named series of (step, value) points in its own panel, stacked top to bottom.

    Non-finite points are dropped; a series without points gets an empty, titled panel. Each panel's y axis
    scale (`y_axis_scale`) is recorded in the returned image's `info["y_axes"]` (name -> "log" or "linear").

    Args:
        series: Name -> (step, value) points, plotted in the mapping's order.
        width: Image width in pixels.
        panel_height: Height of each panel in pixels.
        font_size: Text size in pixels.

    Returns:
        An RGB image of `width` x (`panel_height` x number of series).

    Raises:
        ValueError: when `series` is empty.
    """
    if not series:
        raise ValueError("no series to plot; record at least one value first")
    image = Image.new("RGB", (width, panel_height * len(series)), BACKGROUND)
    draw = ImageDraw.Draw(image)
    pad = font_size // 2
    axes: dict[str, str] = {}
    for k, (name, points) in enumerate(series.items()):
        top = k * panel_height
        box = (pad, top + pad, width - pad, top + panel_height - pad)
        axes[name] = _plot_one(draw, box, name, _finite(points), curve_colour(k), font_size)
    image.info["y_axes"] = axes
    return image
