"""Boxes written as text: GeoChat's 0-100 grid, Qwen-VL's `<box>`, a 0-1000 grid, unit floats, pixels.

`BoxCodec` writes and parses them in instructions; `answer_box` reads the first box of an answer, in pixels, for
grounding scores (`rsvlm eval --task grounding --box-format ...`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rsvlm_zoo.data.schema import DataFormatError

Box = tuple[float, float, float, float]
_NUM = r"-?\d+(?:\.\d+)?"
# GeoChat: {<x1><y1><x2><y2>|<θ>} with the angle part optional. Whitespace between the parts is accepted, as a
# word-level tokenizer decodes `{< 12 >< 30 >< 45 >< 60 >}`.
_V = rf"<\s*({_NUM})\s*>"
_GRID100 = re.compile(rf"\{{\s*{_V}\s*{_V}\s*{_V}\s*{_V}\s*(?:\|\s*{_V}\s*)?\}}")
# Bracketed lists: [a, b, c, d] or [a, b, c, d, θ].
_BRACKET = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*(?:,\s*({_NUM})\s*)?\]")
# Qwen-VL: <box>(x1,y1),(x2,y2)</box> on a 0-1000 grid; no angle. Whitespace inside is accepted.
_P = rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)"
_QWEN = re.compile(rf"<box>\s*{_P}\s*,\s*{_P}\s*</box>")

CONVENTIONS = {
    # name: (pattern, scale or None for pixels, integer values, xywh order)
    "grid100": (_GRID100, 100.0, True, False),
    "qwen": (_QWEN, 1000.0, True, False),
    "grid1000": (_BRACKET, 1000.0, True, False),
    "unit": (_BRACKET, 1.0, False, False),
    "pixel_xyxy": (_BRACKET, None, False, False),
    "pixel_xywh": (_BRACKET, None, False, True),
}


@dataclass(frozen=True)
class BoxMatch:
    """One box found in text, in the convention's own units.

    Attributes:
        start: Offset of the first character of the box text.
        end: Offset one past its last character.
        text: The matched text.
        values: The four numbers as written.
        angle: The angle in degrees when written, else None.
    """

    start: int
    end: int
    text: str
    values: tuple[float, float, float, float]
    angle: float | None


class BoxCodec:
    """Write and parse boxes in instruction text for one named convention.

    Conventions and their text forms:
        - `grid100`: GeoChat's `{<x1><y1><x2><y2>|<θ>}` (or `{<x1><y1><x2><y2>}` without angle); integer
          corners on a 0-100 grid over width and height, θ in degrees.
        - `qwen`: Qwen-VL's `<box>(x1,y1),(x2,y2)</box>`, integer corners on a 0-1000 grid; it has no angle.
        - `grid1000`: `[x1, y1, x2, y2]` (or `[x1, y1, x2, y2, θ]`), integers on a 0-1000 grid.
        - `unit`: `[x1, y1, x2, y2]` floats in [0, 1] written with 3 decimals.
        - `pixel_xyxy`: `[x1, y1, x2, y2]` pixel corners (integers when whole, else 1 decimal).
        - `pixel_xywh`: `[x, y, w, h]` in pixels.

    Boxes passed to `encode` and returned by `decode` are always (x1, y1, x2, y2) pixels; an angle, where the
    convention writes one, is in degrees (the rotated-box convention of `rsvlm_zoo.metrics.grounding`).
    Grid conventions quantise: a round trip is exact to within half a grid cell (W/200 for grid100).
    """

    def __init__(self, convention: str = "grid100") -> None:
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown box convention {convention!r}; known: {', '.join(CONVENTIONS)}")
        self.convention = convention
        self.pattern, self.scale, self.integer, self.xywh = CONVENTIONS[convention]
        self.has_angle = self.pattern.groups >= 5

    def _fmt(self, value: float) -> str:
        if self.integer:
            return str(int(round(value)))
        if self.scale == 1.0:
            return f"{value:.3f}"
        return str(int(value)) if float(value).is_integer() else f"{value:.1f}"

    def encode(self, box: Box, width: int, height: int, angle: float | None = None) -> str:
        """Text for one (x1, y1, x2, y2) pixel box of an image of `width` x `height` pixels.

        Raises:
            ValueError: an angle for a convention that cannot write one (`qwen`).
        """
        if angle is not None and not self.has_angle:
            raise ValueError(f"box convention {self.convention} has no angle; it writes horizontal boxes only")
        x1, y1, x2, y2 = (float(v) for v in box)
        if self.scale is not None:
            sx, sy = self.scale / width, self.scale / height
            vals = [min(max(v, 0.0), self.scale) for v in (x1 * sx, y1 * sy, x2 * sx, y2 * sy)]
        else:
            vals = [x1, y1, x2 - x1, y2 - y1] if self.xywh else [x1, y1, x2, y2]
        if self.pattern is _GRID100:
            body = "".join(f"<{self._fmt(v)}>" for v in vals)
            return "{" + body + (f"|<{int(round(angle))}>" if angle is not None else "") + "}"
        if self.pattern is _QWEN:
            return "<box>({},{}),({},{})</box>".format(*(self._fmt(v) for v in vals))
        parts = [self._fmt(v) for v in vals]
        if angle is not None:
            parts.append(str(int(round(angle))) if float(angle).is_integer() else f"{angle:.1f}")
        return "[" + ", ".join(parts) + "]"

    def find_all(self, text: str) -> list[BoxMatch]:
        """Every box written in `text` in this convention, in order (values in the convention's units)."""
        out = []
        for m in self.pattern.finditer(text):
            values = tuple(float(m.group(k)) for k in range(1, 5))
            angle = float(m.group(5)) if self.has_angle and m.group(5) is not None else None
            out.append(BoxMatch(m.start(), m.end(), m.group(0), values, angle))  # type: ignore[arg-type]
        return out

    def to_pixels(self, match: BoxMatch, width: int, height: int) -> Box:
        """Pixel (x1, y1, x2, y2) of a found box.

        Raises:
            DataFormatError: values outside the grid / unit range, or an inverted box.
        """
        a, b, c, d = match.values
        if self.scale is not None:
            if min(match.values) < 0 or max(match.values) > self.scale:
                raise DataFormatError(
                    f"box {match.text!r} has values outside 0..{self.scale:g} for convention {self.convention}"
                )
            box = (
                a / self.scale * width,
                b / self.scale * height,
                c / self.scale * width,
                d / self.scale * height,
            )
        else:
            box = (a, b, a + c, b + d) if self.xywh else (a, b, c, d)
        if box[2] < box[0] or box[3] < box[1]:
            raise DataFormatError(f"box {match.text!r} is inverted (x2 < x1 or y2 < y1) in {self.convention}")
        return box

    def decode(self, text: str, width: int, height: int) -> list[tuple[Box, float | None]]:
        """Every box in `text` as ((x1, y1, x2, y2) pixels, angle or None)."""
        return [(self.to_pixels(m, width, height), m.angle) for m in self.find_all(text)]


# `rsvlm eval --box-format` names: the convention answers are parsed with.
ANSWER_FORMATS = {
    "geochat": "grid100",  # {<x1><y1><x2><y2>} or {<x1><y1><x2><y2>|<θ>}, 0-100 grid
    "qwen": "qwen",  # <box>(x1,y1),(x2,y2)</box>, 0-1000 grid
    "pixels": "pixel_xyxy",  # [x1, y1, x2, y2] (or [.., θ]) in pixels
    "norm1": "unit",  # [x1, y1, x2, y2] (or [.., θ]) in 0-1
    "norm1000": "grid1000",  # [x1, y1, x2, y2] (or [.., θ]) in 0-1000
}


def answer_box(
    text: str, box_format: str, width: float, height: float
) -> tuple[float, float, float, float] | tuple[float, float, float, float, float] | None:
    """The first box written in an answer, in pixels of a `width` x `height` image, for grounding scores.

    Args:
        text: The answer.
        box_format: A key of `ANSWER_FORMATS` (geochat, qwen, pixels, norm1, norm1000).
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        `(x1, y1, x2, y2)` or, when the answer writes an angle, `(x1, y1, x2, y2, angle_degrees)`; None when no
        box is written in that format, or when the first one is out of range (grid or unit values outside their
        range; pixel corners outside the image, 0..width and 0..height) or inverted (x2 < x1 or y2 < y1). Only the
        first box counts: a bad first box is None even when a later one would parse. Scorers count None as a miss
        (`unparsed`), never drop it.

    Raises:
        ValueError: an unknown `box_format`.
    """
    if box_format not in ANSWER_FORMATS:
        raise ValueError(f"unknown box format {box_format!r}; known: {', '.join(ANSWER_FORMATS)}")
    codec = BoxCodec(ANSWER_FORMATS[box_format])
    match = codec.pattern.search(text)
    if match is None:
        return None
    (found,) = codec.find_all(match.group(0))
    try:
        box = codec.to_pixels(found, width, height)  # type: ignore[arg-type]
    except DataFormatError:
        return None
    if codec.scale is None and (min(box) < 0 or box[2] > width or box[3] > height):
        return None
    return box if found.angle is None else (*box, found.angle)
