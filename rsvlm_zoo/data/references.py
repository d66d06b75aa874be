"""Reference files for the published region benchmarks, as `rsvlm eval --references` reads them.

`read_references(format, annotation, images, split)` turns one benchmark's published annotation files into a
list of reference records; `write_references` writes them as a JSON list. Two record kinds exist:

- grounding (`rsvlm eval --task grounding`): ``{"sample_id", "image", "width", "height", "box": [x1, y1, x2, y2],
  "angle"?, "expression"?}``, the box in pixels of the image; `angle` (degrees) only for a rotated box: the box is
  turned by `angle` about its centre, positive turning the x axis toward the y axis of the image (clockwise on
  screen), as GeoChat writes ``{<x1><y1><x2><y2>|<θ>}``.
- text (`--task regioncap` / `description`): ``{"sample_id", "image", "references": [str, ...]}``.

Formats (`REF_FORMATS`), their input and the `sample_id` each gives, which predictions must carry to be matched:

- ``dior-rsvg`` (grounding): the DIOR-RSVG root (``Annotations/*.xml``, ``train.txt``/``val.txt``/``test.txt`` of
  object indices). sample_id: the running object index over all XMLs in sorted file order, the number the split
  files use (``"1234"``).
- ``rsvg-hr`` (grounding): an RSVG-HR split file ``rsvg_hr_<split>.txt`` (lines ``image,x1,y1,x2,y2,expression``,
  pixels), or the folder holding them with ``--split``. sample_id: ``<file stem>:<line>``, the line counted from 1
  (``"rsvg_hr_test:12"``).
- ``vrsbench-referring`` (grounding): ``VRSBench_EVAL_referring.json``, ``ground_truth`` ``{<x1><y1><x2><y2>}`` on
  the 0-100 grid. sample_id: the record's ``question_id``.
- ``vrsbench-caption`` (text, ``--task description``): ``VRSBench_EVAL_Cap.json``. sample_id: ``question_id``.
- ``geochat-referring`` (grounding): GeoChat-Bench ``referring.jsonl``, ``ground_truth`` a list of 4-corner pixel
  polygons, one per object (or text with grid-100 boxes). sample_id: ``question_id``.
- ``geochat-region-caption`` (text, ``--task regioncap``): GeoChat-Bench ``region_captioning.jsonl``. sample_id:
  ``question_id``.

Sizes: DIOR-RSVG's XML holds each image's size; the other grounding formats do not, so their readers need the image
folder and read each image's size from its header (PIL, pixels never decoded). Boxes on GeoChat's 0-100 grid are
parsed with `BoxCodec("grid100")` and scaled by that size. A GeoChat record that refers to several objects (its
`ground_truth` holds several boxes) has no single-box reference; it is skipped and counted. Zero-area boxes (VRSBench
publishes a few, two grid corners equal after rounding) are kept as published and counted.

Every bad input raises `DataFormatError` naming the file, the record and the fix; with ``skip_bad=True`` a bad record
is skipped and counted instead.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsvlm_zoo.data.box_codec import BoxCodec
from rsvlm_zoo.data.images import image_size
from rsvlm_zoo.data.readers._common import IMAGE_EXTENSIONS, RecordErrors, load_json, resolve_image
from rsvlm_zoo.data.readers.voc import DIOR_SPLITS, read_dior_rsvg
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


class _Collector:
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


class _Sizes:
    """Image sizes read from the image headers in one folder, once per image."""

    def __init__(self, folder: Path | None, fmt: str) -> None:
        self.folder = folder
        self.fmt = fmt
        self._cache: dict[str, tuple[int, int]] = {}

    def __call__(self, name: str, default_ext: str | None = None) -> tuple[int, int]:
        if self.folder is None:
            raise DataFormatError(
                f"format {self.fmt} needs the image folder (the file does not hold image sizes): pass --images DIR"
            )
        if name not in self._cache:
            file_name = _image_file(name, default_ext)
            path = resolve_image(self.folder, file_name)
            if not path.is_file():
                raise DataFormatError(
                    f"image {file_name!r} is not in {self.folder} (looked for {path} and the same name with other "
                    "image extensions); pass the benchmark's image folder with --images, or add the missing image"
                )
            self._cache[name] = image_size(path)
        return self._cache[name]


def _image_file(name: str, default_ext: str | None) -> str:
    return name if default_ext is None or Path(name).suffix.lower() in IMAGE_EXTENSIONS else name + default_ext


def _records(path: Path) -> Iterator[tuple[str, Any]]:
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


def _field(rec: Any, key: str, kinds: type | tuple[type, ...], what: str = "") -> Any:
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


def _question_id(rec: Any) -> str:
    value = _field(rec, "question_id", (int, str), " (the id predictions are matched by)")
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


def _grounding(
    sample_id: str,
    image: str,
    size: tuple[int, int],
    box: list[float],
    angle: float | None,
    expression: str | None,
    out: References,
) -> dict[str, Any]:
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


def _grid_boxes(text: str, size: tuple[int, int], what: str) -> list[tuple[list[float], float | None]]:
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


# ---- readers ----------------------------------------------------------------------------------------------------
def read_dior_rsvg_refs(annotation: Path, images: Path | None, split: str | None, skip_bad: bool) -> References:
    """DIOR-RSVG: one grounding reference per `<object>`, sample_id = the running object index of the split files.

    Uses the project's DIOR-RSVG reader (`rsvlm_zoo.data.readers.voc.read_dior_rsvg`); the sizes come from the XML.
    Without a split, every object is written and labelled with the split file that lists it.
    """
    root = annotation.parent if annotation.name == "Annotations" else annotation
    samples = read_dior_rsvg(root, images, split, on_bad_record="skip" if skip_bad else "error")
    labels = {int(s.sample_id): split for s in samples} if split else _dior_split_labels(root)
    col = _Collector(GROUNDING, root, skip_bad)
    for sample in samples:
        with col.record(
            f"object index {sample.sample_id} ({sample.meta.get('file')} object {sample.meta.get('object')})"
        ):
            region = sample.regions[0]
            image = Path(str(sample.image)).name
            ref = _grounding(
                sample.sample_id,
                image,
                (sample.width, sample.height),
                list(region.box),
                None,
                region.text,
                col.out,
            )
            col.add(ref, labels.get(int(sample.sample_id)), f"object index {sample.sample_id}")
    out = col.finish()
    if samples.report.skipped:
        out.skipped["bad record"] += samples.report.skipped
        out.skip_messages.extend(samples.report.reasons)
    return out


def _dior_split_labels(root: Path) -> dict[int, str]:
    labels: dict[int, str] = {}
    for name in DIOR_SPLITS:
        path = root / f"{name}.txt"
        if not path.is_file():
            continue
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    labels[int(line.strip())] = name
                except ValueError as err:
                    raise DataFormatError(f"{path}: line {line_no} is {line!r}, not an object index") from err
    return labels


def read_rsvg_hr_refs(annotation: Path, images: Path | None, split: str | None, skip_bad: bool) -> References:
    """RSVG-HR split files (``image,x1,y1,x2,y2,expression`` per line, pixels); sizes from the image headers.

    `annotation` is one split file, or the folder of ``rsvg_hr_<split>.txt`` files with `split`. The expression is
    everything after the fifth comma, so commas inside it are kept.
    """
    path = _rsvg_hr_file(annotation, split)
    label = split or (path.stem[len("rsvg_hr_") :] if path.stem.startswith("rsvg_hr_") else path.stem)
    sizes = _Sizes(images, "rsvg-hr")
    col = _Collector(GROUNDING, path, skip_bad)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not UTF-8 (byte offset {err.start}); re-encode the file as UTF-8") from err
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        with col.record(f"line {line_no}"):
            parts = line.split(",", 5)
            if len(parts) < 6:
                raise DataFormatError(
                    f"has {len(parts)} comma-separated field(s); RSVG-HR lines are image,x1,y1,x2,y2,expression"
                )
            try:
                box = [float(v) for v in parts[1:5]]
            except ValueError as err:
                raise DataFormatError(
                    f"box fields {parts[1:5]} are not numbers (image,x1,y1,x2,y2,expression)"
                ) from err
            image, expression = parts[0].strip(), parts[5].strip()
            if not image or not expression:
                raise DataFormatError("has an empty image name or expression; fix or remove the line")
            ref = _grounding(f"{path.stem}:{line_no}", image, sizes(image), box, None, expression, col.out)
            col.add(ref, label, f"line {line_no}")
    return col.finish()


def _rsvg_hr_file(annotation: Path, split: str | None) -> Path:
    if annotation.is_file():
        return annotation
    if not annotation.is_dir():
        raise DataFormatError(f"{annotation}: annotation file or folder not found; check the path")
    present = sorted(p.name for p in annotation.glob("*.txt"))
    if split is None:
        raise DataFormatError(
            f"{annotation}: a folder needs --split to choose the split file (present: {', '.join(present) or 'none'})"
        )
    for name in (f"rsvg_hr_{split}.txt", f"{split}.txt"):
        if (annotation / name).is_file():
            return annotation / name
    raise DataFormatError(
        f"{annotation}: no split file rsvg_hr_{split}.txt or {split}.txt (present: {', '.join(present) or 'none'})"
    )


def read_vrsbench_referring_refs(
    annotation: Path, images: Path | None, split: str | None, skip_bad: bool
) -> References:
    """VRSBench ``VRSBench_EVAL_referring.json``: grid-100 ``ground_truth`` boxes scaled by each image's size."""
    sizes = _Sizes(images, "vrsbench-referring")
    col = _Collector(GROUNDING, annotation, skip_bad)
    for name, rec in _records(annotation):
        with col.record(name):
            sample_id = _question_id(rec)
            image = _field(rec, "image_id", str)
            truth = _field(rec, "ground_truth", str, " (the box, {<x1><y1><x2><y2>} on the 0-100 grid)")
            expression = _field(rec, "question", str, " (the referring expression)")
            boxes = _grid_boxes(truth, sizes(image, ".png"), "ground_truth")
            if len(boxes) > 1:
                col.skip(SEVERAL_BOXES, f"{name} question_id {sample_id}: ground_truth holds {len(boxes)} boxes")
                continue
            (box, angle), file_name = boxes[0], _image_file(image, ".png")
            ref = _grounding(sample_id, file_name, sizes(image, ".png"), box, angle, expression.strip(), col.out)
            col.add(ref, None, f"{name} (question_id {sample_id})")
    return col.finish()


def read_vrsbench_caption_refs(annotation: Path, images: Path | None, split: str | None, skip_bad: bool) -> References:
    """VRSBench ``VRSBench_EVAL_Cap.json``: one text reference (the detailed caption) per record."""
    col = _Collector(TEXT, annotation, skip_bad)
    codec = BoxCodec("grid100")
    for name, rec in _records(annotation):
        with col.record(name):
            sample_id = _question_id(rec)
            image = _field(rec, "image_id", str)
            kind = rec.get("type", "caption")
            if kind != "caption":
                raise DataFormatError(
                    f"has type {kind!r}, not 'caption': this is not VRSBench_EVAL_Cap.json (referring: use the "
                    "vrsbench-referring format; VQA files have no caption references)"
                )
            caption = _field(rec, "ground_truth", str, " (the caption)").strip()
            if codec.find_all(caption):
                raise DataFormatError("ground_truth holds a box, not a caption; use the vrsbench-referring format")
            if not caption:
                raise DataFormatError("ground_truth is empty; give the caption or remove the record")
            col.add({"sample_id": sample_id, "image": image, "references": [caption]}, None, f"{name}")
    return col.finish()


def read_geochat_referring_refs(annotation: Path, images: Path | None, split: str | None, skip_bad: bool) -> References:
    """GeoChat-Bench ``referring.jsonl``: single-object records become grounding references.

    ``ground_truth`` is a list of objects, each 4 corner points in pixels of the image (a rotated rectangle, turned
    into box + angle by `polygon_to_box`), or text with ``{<x1><y1><x2><y2>|<θ>}`` boxes on the 0-100 grid. Images
    are ``<image folder>/<image_id>.png``; records with several objects are skipped and counted.
    """
    sizes = _Sizes(images, "geochat-referring")
    col = _Collector(GROUNDING, annotation, skip_bad)
    for name, rec in _records(annotation):
        with col.record(name):
            sample_id = _question_id(rec)
            image = _field(rec, "image_id", str)
            expression = _field(rec, "question", str, " (the referring expression)").strip()
            truth = _field(rec, "ground_truth", (list, str), " (the object boxes)")
            size = sizes(image, ".png")
            if isinstance(truth, str):
                boxes = _grid_boxes(truth, size, "ground_truth")
            elif truth and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in truth):
                boxes = [polygon_to_box(truth, "ground_truth")]  # one polygon, not wrapped in a list
            else:
                boxes = [polygon_to_box(p, f"ground_truth[{k}]") for k, p in enumerate(truth)]
            if not boxes:
                raise DataFormatError("ground_truth is empty; a referring record needs its object's box")
            if len(boxes) > 1:
                col.skip(SEVERAL_BOXES, f"{name} question_id {sample_id}: ground_truth holds {len(boxes)} boxes")
                continue
            box, angle = boxes[0]
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            if not (0 <= cx <= size[0] and 0 <= cy <= size[1]):
                raise DataFormatError(
                    f"object centre ({cx:.1f}, {cy:.1f}) lies outside the {size[0]}x{size[1]} image "
                    f"{_image_file(image, '.png')}; the corners are read as pixels of that image: check --images"
                )
            ref = _grounding(sample_id, _image_file(image, ".png"), size, box, angle, expression, col.out)
            col.add(ref, None, f"{name} (question_id {sample_id})")
    return col.finish()


def read_geochat_region_caption_refs(
    annotation: Path, images: Path | None, split: str | None, skip_bad: bool
) -> References:
    """GeoChat-Bench ``region_captioning.jsonl``: the ``ground_truth`` caption of each record as its text reference.

    The region itself (``question``, a grid-100 box) is the model's input, not part of the reference.
    """
    col = _Collector(TEXT, annotation, skip_bad)
    for name, rec in _records(annotation):
        with col.record(name):
            sample_id = _question_id(rec)
            image = _field(rec, "image_id", str)
            truth = _field(rec, "ground_truth", (str, list), " (the region's caption)")
            texts = [truth] if isinstance(truth, str) else truth
            if not all(isinstance(t, str) for t in texts):
                raise DataFormatError(
                    "ground_truth holds boxes, not captions: this looks like referring.jsonl; use geochat-referring"
                )
            texts = [t.strip() for t in texts if t.strip()]
            if not texts:
                raise DataFormatError("ground_truth is empty; give the caption or remove the record")
            col.add({"sample_id": sample_id, "image": _image_file(image, ".png"), "references": texts}, None, name)
    return col.finish()


@dataclass(frozen=True)
class RefFormat:
    """One benchmark format `rsvlm data refs` reads.

    Attributes:
        reader: ``(annotation, images, split, skip_bad) -> References``.
        kind: `grounding` or `text`.
        eval_tasks: The `rsvlm eval --task` values the references are for.
        needs_images: Whether the image folder is required (sizes come from the image headers).
        has_splits: Whether `--split` means anything for this format.
        help: One line for the command's help.
    """

    reader: Callable[[Path, Path | None, str | None, bool], References]
    kind: str
    eval_tasks: tuple[str, ...]
    needs_images: bool
    has_splits: bool
    help: str


REF_FORMATS: dict[str, RefFormat] = {
    "dior-rsvg": RefFormat(
        read_dior_rsvg_refs, GROUNDING, ("grounding",), False, True, "DIOR-RSVG root; sample_id = object index"
    ),
    "rsvg-hr": RefFormat(
        read_rsvg_hr_refs, GROUNDING, ("grounding",), True, True, "RSVG-HR rsvg_hr_<split>.txt; id <stem>:<line>"
    ),
    "vrsbench-referring": RefFormat(
        read_vrsbench_referring_refs, GROUNDING, ("grounding",), True, False, "VRSBench_EVAL_referring.json"
    ),
    "vrsbench-caption": RefFormat(
        read_vrsbench_caption_refs, TEXT, ("description",), False, False, "VRSBench_EVAL_Cap.json"
    ),
    "geochat-referring": RefFormat(
        read_geochat_referring_refs, GROUNDING, ("grounding",), True, False, "GeoChat-Bench referring.jsonl"
    ),
    "geochat-region-caption": RefFormat(
        read_geochat_region_caption_refs, TEXT, ("regioncap",), False, False, "GeoChat-Bench region_captioning.jsonl"
    ),
}


def check_arguments(format: str, images: str | Path | None, split: str | None) -> None:
    """Raise `ValueError` for arguments a format cannot use (an unknown format, a split, a missing image folder)."""
    if format not in REF_FORMATS:
        raise ValueError(f"unknown references format {format!r}; known: {', '.join(REF_FORMATS)}")
    spec = REF_FORMATS[format]
    if split is not None and not spec.has_splits:
        raise ValueError(f"format {format} has no splits (the file is the benchmark's evaluation set); drop --split")
    if images is None and spec.needs_images:
        raise ValueError(
            f"format {format} needs --images DIR: the file does not hold image sizes, which are read from the image "
            "headers to put the boxes in pixels"
        )


def read_references(
    format: str,
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    *,
    skip_bad: bool = False,
) -> References:
    """Read one benchmark's annotation files as reference records.

    Args:
        format: A name of `REF_FORMATS`.
        annotation: The annotation file (or the dataset root / split-file folder where the format says so).
        images: The image folder (required by formats whose files hold no image sizes).
        split: The split to read, for formats that have splits.
        skip_bad: Skip and count bad records instead of raising on the first.

    Raises:
        ValueError: arguments the format cannot use (see `check_arguments`).
        DataFormatError: bad input, naming the file, the record and the fix.
    """
    check_arguments(format, images, split)
    spec = REF_FORMATS[format]
    return spec.reader(Path(annotation), Path(images) if images is not None else None, split, skip_bad)


def write_references(records: list[dict[str, Any]], out: str | Path, force: bool = False) -> Path:
    """Write `records` as a JSON list (one record a line) to `out`; an existing file is kept unless `force`.

    The file is written beside `out` and moved into place, so an interrupted run leaves no partial file.

    Raises:
        FileExistsError: `out` exists and `force` is false.
        OSError: the file cannot be written.
    """
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to overwrite it, or choose another --out")
    if not out.parent.is_dir():
        raise OSError(f"{out.parent}: no such folder for the references file; create it or choose another --out")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    body = ",\n".join(json.dumps(rec, ensure_ascii=False) for rec in records)
    try:
        tmp.write_text(f"[\n{body}\n]\n" if records else "[]\n", encoding="utf-8")
        if out.exists() and not force:
            raise FileExistsError(
                f"{out} appeared while writing; pass --force to overwrite it, or choose another --out"
            )
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


__all__ = [
    "GROUNDING",
    "REF_FORMATS",
    "TEXT",
    "RefFormat",
    "References",
    "check_arguments",
    "polygon_to_box",
    "read_references",
    "write_references",
]
