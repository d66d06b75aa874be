"""Reference records and the helpers every benchmark reader shares: collection, skips, image sizes, boxes.

See `rsvlm_zoo.data.references` for the two record kinds (grounding, text) and the formats.
"""

import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsvlm_zoo.data.box_codec import BoxCodec
from rsvlm_zoo.data.images import image_size
from rsvlm_zoo.data.readers._common import IMAGE_EXTENSIONS, RecordErrors, load_json, resolve_image
from rsvlm_zoo.data.schema import DataFormatError

GROUNDING = "grounding"
TEXT = "text"
NO_SPLIT = "no split"
SEVERAL_BOXES = "several boxes (a grounding reference holds one)"


@dataclass
class References:
    """What a reader produced.

    Attributes:
        kind: `grounding` or `text`.
        records: The reference records, in the file's order.
        splits: Records per split label (`no split` for a benchmark file without splits).
        skipped: Skipped records per short reason.
        skip_messages: The full message of every skipped record (file, record, reason), in reading order.
        notes: Facts about kept records worth a count (e.g. zero-area boxes kept as published).
        source: The annotation file or folder.
    """

    kind: str
    records: list[dict[str, Any]] = field(default_factory=list)
    splits: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    skip_messages: list[str] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)
    source: str = ""

    def summary(self) -> str:
        """One line: how many references, per split, what was skipped and why."""
        line = f"{len(self.records)} {self.kind} reference(s)"
        if set(self.splits) - {NO_SPLIT}:
            line += " (per split: " + ", ".join(f"{name} {n}" for name, n in sorted(self.splits.items())) + ")"
        n_skipped = sum(self.skipped.values())
        if n_skipped:
            reasons = ", ".join(f"{reason}: {n}" for reason, n in self.skipped.most_common())
            line += f"; skipped {n_skipped} record(s): {reasons}"
        if self.notes:
            line += "; " + ", ".join(f"{n} {note}" for note, n in self.notes.most_common())
        return line


class Collector:
    """Adds records with unique sample ids, counts splits and skips, turns failures into named errors."""

    def __init__(self, kind: str, source: Path, skip_bad: bool) -> None:
        self.out = References(kind, source=str(source))
        self.errors = RecordErrors(source, "skip" if skip_bad else "error")
        self._seen: dict[str, str] = {}

    def record(self, name: str) -> RecordErrors:
        """Context for one record: a failure inside raises `DataFormatError` naming it, or is skipped and counted."""
        return self.errors.record(name)

    def add(self, ref: dict[str, Any], split: str | None, where: str) -> None:
        """Keep `ref` (inside a `record` context) unless its sample id was already given by another record."""
        sample_id = ref["sample_id"]
        if sample_id in self._seen:
            raise DataFormatError(
                f"sample_id {sample_id!r} was already given by {self._seen[sample_id]}; sample ids must be unique "
                "(predictions are matched to them): fix the duplicate record"
            )
        self._seen[sample_id] = where
        self.out.records.append(ref)
        self.out.splits[split or NO_SPLIT] += 1

    def skip(self, reason: str, message: str) -> None:
        """Count a record that is well formed but has no reference of this kind."""
        self.out.skipped[reason] += 1
        self.out.skip_messages.append(f"{self.out.source}: {message}")

    def finish(self) -> References:
        """The references, with the bad records skipped under `skip_bad` counted."""
        report = self.errors.report
        if report.skipped:
            self.out.skipped["bad record"] += report.skipped
            self.out.skip_messages.extend(report.reasons)
        if not self.out.records:
            first = f"; first skipped: {self.out.skip_messages[0]}" if self.out.skip_messages else ""
            raise DataFormatError(f"{self.out.source}: no references could be read{first}")
        return self.out


class ImageSizes:
    """Image sizes read from the image headers in one folder, once per image."""

    def __init__(self, folder: Path | None, fmt: str) -> None:
        self.folder = folder
        self.fmt = fmt
        self._cache: dict[str, tuple[int, int]] = {}

    def __call__(self, name: str, default_ext: str | None = None) -> tuple[int, int]:
        """(width, height) of the image `name` (with `default_ext` added when it has no image extension)."""
        if self.folder is None:
            raise DataFormatError(
                f"format {self.fmt} needs the image folder (the file does not hold image sizes): pass --images DIR"
            )
        if name not in self._cache:
            file_name = image_file(name, default_ext)
            path = resolve_image(self.folder, file_name)
            if not path.is_file():
                raise DataFormatError(
                    f"image {file_name!r} is not in {self.folder} (looked for {path} and the same name with other "
                    "image extensions); pass the benchmark's image folder with --images, or add the missing image"
                )
            self._cache[name] = image_size(path)
        return self._cache[name]


def image_file(name: str, default_ext: str | None) -> str:
    """`name` with `default_ext` added unless it already ends in an image extension."""
    return name if default_ext is None or Path(name).suffix.lower() in IMAGE_EXTENSIONS else name + default_ext


def iter_records(path: Path) -> Iterator[tuple[str, Any]]:
    """(`record name`, record) of a JSON list or a JSON Lines file (chosen by content, not by suffix)."""
    if not path.is_file():
        raise DataFormatError(f"{path}: annotation file not found; check the path")
    with open(path, "rb") as fh:
        head = fh.read(4096).decode("utf-8-sig", errors="replace").lstrip()
    if head.startswith("["):
        doc = load_json(path)
        if not isinstance(doc, list):
            raise DataFormatError(f"{path}: expected a JSON list of records, got {type(doc).__name__}")
        for k, rec in enumerate(doc):
            yield f"record {k}", rec
        return
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not UTF-8 (byte offset {err.start}); re-encode the file as UTF-8") from err
    whole = None
    if "\n" in text.strip():  # one line is one JSON Lines record; one object over several lines is not a record file
        try:
            whole = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            whole = None  # JSON Lines (several objects), or a broken line reported below
    if isinstance(whole, dict):
        raise DataFormatError(
            f"{path}: one JSON object (keys {', '.join(map(str, list(whole)[:5]))}), not a list of records nor JSON "
            "Lines; pass the benchmark's question file"
        )
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFormatError(
                f"{path}: line {line_no} is not valid JSON ({err.msg} at column {err.colno}); fix or remove the line"
            ) from err
        yield f"line {line_no}", rec


def field_of(rec: Any, key: str, kinds: type | tuple[type, ...], what: str = "") -> Any:
    """`rec[key]`, checked to be a JSON object's field of one of `kinds`; `DataFormatError` naming it otherwise."""
    if not isinstance(rec, dict):
        raise DataFormatError(f"is {type(rec).__name__}, not an object; each record must be a JSON object")
    if key not in rec:
        raise DataFormatError(f"has no {key!r}{what}; add it or remove the record")
    value = rec[key]
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, kinds) or isinstance(value, bool):
        names = " or ".join(k.__name__ for k in kinds)
        raise DataFormatError(f"{key!r} must be {names}, got {type(value).__name__} {str(value)[:60]!r}")
    return value


def question_id(rec: Any) -> str:
    """The record's non-empty `question_id` as text (the sample_id predictions are matched by)."""
    value = field_of(rec, "question_id", (int, str), " (the id predictions are matched by)")
    text = str(value).strip()
    if not text:
        raise DataFormatError("'question_id' is empty; give each record a unique id")
    return text


def _round(values: Any) -> list[float]:
    return [round(float(v), 4) for v in values]


def _check_pixel_box(box: list[float], width: int, height: int, out: References) -> None:
    if not all(math.isfinite(v) for v in box):
        raise DataFormatError(f"box {box} holds NaN or infinite values")
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        raise DataFormatError(f"box {box} is inverted (x2 < x1 or y2 < y1); boxes are x1, y1, x2, y2")
    if x2 < 0 or y2 < 0 or x1 > width or y1 > height:
        raise DataFormatError(
            f"box {box} lies outside the {width}x{height} image; check the coordinate convention (pixels, x1 y1 x2 y2)"
        )
    if x2 == x1 or y2 == y1:
        out.notes["zero-area box(es) kept as published"] += 1


def grounding_record(
    sample_id: str,
    image: str,
    size: tuple[int, int],
    box: list[float],
    angle: float | None,
    expression: str | None,
    out: References,
) -> dict[str, Any]:
    """A grounding reference record (pixel box checked against the image size), as `rsvlm eval` reads it."""
    width, height = size
    box = _round(box)
    _check_pixel_box(box, width, height, out)
    ref: dict[str, Any] = {"sample_id": sample_id, "image": image, "width": int(width), "height": int(height)}
    ref["box"] = box
    if angle is not None and not math.isclose(angle, 0.0, abs_tol=1e-9):
        ref["angle"] = round(float(angle), 4)
    if expression:
        ref["expression"] = expression
    return ref


def grid_boxes(text: str, size: tuple[int, int], what: str) -> list[tuple[list[float], float | None]]:
    """Every GeoChat grid-100 box in `text`, in pixels of an image of `size` (width, height), with its angle."""
    codec = BoxCodec("grid100")
    matches = codec.find_all(text)
    if not matches:
        raise DataFormatError(
            f"{what} {text[:80]!r} holds no box written as {{<x1><y1><x2><y2>}} (0-100 grid); fix the record, "
            "or check the format name"
        )
    return [(list(codec.to_pixels(m, *size)), m.angle) for m in matches]


def polygon_to_box(points: Any, what: str = "polygon") -> tuple[list[float], float | None]:
    """A 4-corner polygon (``[[x, y] * 4]`` or 8 numbers) or an ``[x1, y1, x2, y2]`` box -> (box, angle or None).

    The polygon is read as a rotated rectangle: its first edge gives the angle (degrees, turning the x axis toward
    the y axis) and the width, the second edge the height; the box is that rectangle before rotation, centred on the
    corners' mean. An axis-aligned polygon gives its corner box and no angle.

    Raises:
        DataFormatError: not 4 points / 4 numbers, or values that are not finite numbers.
    """
    flat: list[Any]
    if isinstance(points, (list, tuple)) and points and all(isinstance(p, (list, tuple)) for p in points):
        flat = [v for p in points for v in p] if all(len(p) == 2 for p in points) else []
    else:
        flat = list(points) if isinstance(points, (list, tuple)) else []
    if len(flat) not in (4, 8) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        raise DataFormatError(
            f"{what} {str(points)[:80]!r} is not 4 corner points [[x, y], ...] nor a box [x1, y1, x2, y2]"
        )
    vals = [float(v) for v in flat]
    if not all(math.isfinite(v) for v in vals):
        raise DataFormatError(f"{what} holds NaN or infinite values")
    if len(vals) == 4:
        return vals, None
    xs, ys = vals[0::2], vals[1::2]
    width = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
    height = math.hypot(xs[2] - xs[1], ys[2] - ys[1])
    if width == 0 or height == 0:
        return [min(xs), min(ys), max(xs), max(ys)], None
    angle = math.degrees(math.atan2(ys[1] - ys[0], xs[1] - xs[0]))
    if angle >= 90:  # a rectangle is the same turned by 180 degrees: keep the angle in [-90, 90)
        angle -= 180
    elif angle < -90:
        angle += 180
    if math.isclose(abs(angle), 90.0, abs_tol=1e-6):
        width, height, angle = height, width, 0.0
    if math.isclose(angle, 0.0, abs_tol=1e-6):
        return [min(xs), min(ys), max(xs), max(ys)], None
    cx, cy = sum(xs) / 4, sum(ys) / 4
    return [cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2], angle
