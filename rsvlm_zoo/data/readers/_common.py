"""Shared reader machinery: JSON loading, bad-record handling, lazy image sizes, geometry parsing.

Kept in one file (over 300 lines) on purpose: it is the one toolbox every reader imports; split, each reader would
import from several modules for one concern.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from rsvlm_zoo.data.schema import DataFormatError, Sample
from rsvlm_zoo.data.validation import validate_region, validate_size

log = logging.getLogger("rsvlm_zoo.data.readers")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
ENCODING_ERRORS = ("strict", "replace")
# Annotation files larger than this are refused before reading (Osprey-724K's largest file is ~0.6 GB).
MAX_JSON_BYTES = int(os.environ.get("RSVLM_MAX_JSON_BYTES", 4 * 2**30))


@dataclass
class ReadReport:
    """What a reader skipped when called with `on_bad_record="skip"`.

    Attributes:
        source: The annotation file or directory.
        read: Samples returned.
        skipped: Records skipped.
        reasons: Skip messages (file, record and reason), in reading order.
    """

    source: str
    read: int = 0
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)


class SampleList(list):
    """A plain `list[Sample]` that also carries the reader's `ReadReport` as `.report`."""

    report: ReadReport


class LazySizeSample(Sample):
    """A `Sample` whose width/height, when the annotation lacks them, come from the image header on first use.

    Only the header is read (PIL `Image.open(...).size`, tifffile as fallback); pixels are never decoded.
    Raises `ImageReadError` on first access when the image is missing or unreadable.
    """

    def __repr__(self) -> str:
        size = f"{self.__dict__.get('_width')}x{self.__dict__.get('_height')}"
        n = len(self.regions)
        return f"LazySizeSample(image={self.image!r}, size={size}, regions={n}, id={self.sample_id!r})"

    def _load_size(self) -> None:
        from rsvlm_zoo.data.images import image_size

        width, height = image_size(self.image)  # type: ignore[arg-type]
        self.__dict__["_width"], self.__dict__["_height"] = width, height

    @property  # type: ignore[override]
    def width(self) -> int:  # noqa: D102
        if self.__dict__.get("_width") is None:
            self._load_size()
        return self.__dict__["_width"]

    @width.setter
    def width(self, value: int | None) -> None:
        self.__dict__["_width"] = value

    @property  # type: ignore[override]
    def height(self) -> int:  # noqa: D102
        if self.__dict__.get("_height") is None:
            self._load_size()
        return self.__dict__["_height"]

    @height.setter
    def height(self, value: int | None) -> None:
        self.__dict__["_height"] = value

    def size_known(self) -> bool:
        """Whether width and height are known without reading the image header."""
        return self.__dict__.get("_width") is not None and self.__dict__.get("_height") is not None


def validate_sample_geometry(sample: Sample) -> None:
    """`validate_region` for every region of `sample`, at its size when known without opening the image.

    Raises:
        DataFormatError: naming the region (by index) and what is wrong with it.
    """
    width, height = known_size(sample)
    validate_size(width, height)
    for k, region in enumerate(sample.regions):
        try:
            validate_region(region, width, height)
        except DataFormatError as err:
            raise DataFormatError(f"region {k}: {err}") from err


def make_sample(image: str | Path, width: Any = None, height: Any = None, **kwargs: Any) -> Sample:
    """A `Sample`, or a `LazySizeSample` when width/height are missing (None or 0) in the annotation."""
    if width and height:
        return Sample(image=image, width=int(width), height=int(height), **kwargs)
    return LazySizeSample(image=image, width=None, height=None, **kwargs)  # type: ignore[arg-type]


def size_known(sample: Sample) -> bool:
    """Whether the sample's size is known without opening its image."""
    return not isinstance(sample, LazySizeSample) or sample.size_known()


def known_size(sample: Sample) -> tuple[int | None, int | None]:
    """(width, height) when known from the annotation, else (None, None); never opens the image."""
    return (sample.width, sample.height) if size_known(sample) else (None, None)


class RecordErrors:
    """Turns per-record failures into `DataFormatError`s naming file and record, or counts and skips them.

    Use `with errors.record("images[3] id=7"): ...` around the code that builds one record; on
    `on_bad_record="skip"` a failing block is abandoned and counted.
    """

    def __init__(self, source: str | Path, on_bad_record: str = "error") -> None:
        if on_bad_record not in ("error", "skip"):
            raise ValueError(f"on_bad_record must be 'error' or 'skip', got {on_bad_record!r}")
        self.report = ReadReport(str(source))
        self.skip = on_bad_record == "skip"
        self._name = ""

    def record(self, name: str) -> RecordErrors:
        """Context for one record called `name` (index and id)."""
        self._name = name
        return self

    def __enter__(self) -> RecordErrors:
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        if exc is None:
            return False
        if isinstance(exc, KeyError):
            msg = f"missing field {exc}; add it or remove the record"
        elif isinstance(exc, (DataFormatError, TypeError, ValueError, IndexError)):
            msg = str(exc)
        else:
            return False
        message = f"{self.report.source}: {self._name}: {msg}"
        if not self.skip:
            raise DataFormatError(message) from exc
        self.report.skipped += 1
        self.report.reasons.append(message)
        return True

    def finish(self, samples: list[Sample]) -> SampleList:
        """Validate each sample's geometry (`validate_region`), wrap the kept ones with the report, log skips.

        A sample whose image size is known has its regions checked against it; one read lazily
        (`LazySizeSample`) gets the size-independent checks now and the rest when its geometry is used.
        """
        kept = []
        for sample in samples:
            with self.record(sample.where() if sample.source != self.report.source else f"record {sample.sample_id!r}"):
                validate_sample_geometry(sample)
                kept.append(sample)
        out = SampleList(kept)
        self.report.read = len(out)
        out.report = self.report
        if self.report.skipped:
            log.warning(
                "%s: skipped %d bad record(s), read %d; first: %s",
                self.report.source,
                self.report.skipped,
                len(out),
                self.report.reasons[0],
            )
        return out


def load_json(path: str | Path, encoding_errors: str = "strict") -> Any:
    """Parse a JSON file, with errors naming the file and the line/column.

    Args:
        path: The file.
        encoding_errors: `strict` (non-UTF-8 bytes are an error) or `replace` (they become U+FFFD).

    Raises:
        DataFormatError: file missing, not UTF-8, or not valid JSON.
    """
    path = Path(path)
    if encoding_errors not in ENCODING_ERRORS:
        raise ValueError(f"encoding_errors must be one of {', '.join(ENCODING_ERRORS)}, got {encoding_errors!r}")
    if not path.is_file():
        raise DataFormatError(f"{path}: annotation file not found; check the path")
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise DataFormatError(
            f"{path}: {size / 2**20:.0f} MiB is more than the {MAX_JSON_BYTES / 2**20:.0f} MiB limit for one "
            "annotation file; split it, or raise the limit with RSVLM_MAX_JSON_BYTES"
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig", errors=encoding_errors)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataFormatError(
            f"{path}: byte {raw[err.start]:#04x} at line {line} column {col} is not UTF-8; "
            "re-encode the file "
            "as UTF-8 (e.g. `iconv -f latin1 -t utf-8`) or pass encoding_errors='replace'"
        ) from err
    try:
        return json.loads(text)
    except RecursionError as err:
        raise DataFormatError(
            f"{path}: JSON nested too deeply to read (thousands of levels); annotation files are a few levels deep, "
            "the file is malformed or hostile"
        ) from err
    except json.JSONDecodeError as err:
        raise DataFormatError(
            f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}; fix the file there "
            "(truncated download, trailing comma, unquoted key?)"
        ) from err


def expect(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """Return `value` when it is of `kind`, else raise a DataFormatError describing the expectation."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataFormatError(f"{what} must be {names}, got {type(value).__name__} {str(value)[:60]!r}")
    return value


class OutsideImagesError(DataFormatError):
    """An image name that resolves outside the images directory."""


def _outside(name: str, folder: Path) -> OutsideImagesError:
    return OutsideImagesError(
        f"image {name!r} lies outside the images directory {folder}; image names are relative to it "
        "(no absolute paths, '..' or links out of it): fix the record, or pass allow_outside_images=True "
        "when your dataset really keeps images elsewhere"
    )


def resolve_image(folder: Path, name: str, allow_outside: bool = False) -> Path:
    """`folder/name`, or a file with the same stem and another image extension when that one is absent.

    The result must stay inside `folder`: an absolute name, `..` or a symbolic link that leads out of it is
    refused before any file outside is looked at, unless `allow_outside` is set.

    Raises:
        OutsideImagesError: when the image would be read from outside `folder`.
    """
    folder = Path(folder)
    if not allow_outside:
        if not name or Path(name).is_absolute() or Path(name).drive:
            raise _outside(name, folder)
        if os.path.normpath(name).split(os.sep)[0] == os.pardir:
            raise _outside(name, folder)
    path = folder / name
    found = path if path.exists() else None
    if found is None:
        for ext in IMAGE_EXTENSIONS:
            for cand in (path.with_suffix(ext), path.with_suffix(ext.upper())):
                if found is None and cand.exists():
                    found = cand
    if found is not None and not allow_outside:
        root = folder.resolve()
        if not found.resolve().is_relative_to(root):
            raise _outside(name, folder)
    return found if found is not None else path


def parse_polygons(seg: Any, what: str = "segmentation") -> list[np.ndarray]:
    """COCO polygon list (or the flat single-polygon quirk) -> list of (N, 2) float arrays.

    Raises:
        DataFormatError: non-numeric values, odd coordinate counts or fewer than 3 points.
    """
    if seg and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seg):
        seg = [seg]  # quirk: one flat polygon instead of a list of polygons
    out = []
    for k, poly in enumerate(seg):
        try:
            arr = np.asarray(poly, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataFormatError(f"{what}[{k}] is not a list of numbers") from err
        if arr.ndim == 2 and arr.shape[1] == 2:
            arr = arr.reshape(-1)
        if arr.ndim != 1 or arr.size % 2:
            raise DataFormatError(f"{what}[{k}] has {arr.size} values; polygons need x, y pairs")
        if arr.size < 6:
            raise DataFormatError(
                f"{what}[{k}] has {arr.size // 2} point(s); a polygon needs at least 3 (drop it or fix it)"
            )
        if not np.isfinite(arr).all():
            raise DataFormatError(f"{what}[{k}] holds NaN or infinite coordinates")
        out.append(arr.reshape(-1, 2))
    return out


def parse_rle(seg: dict, height: int | None, width: int | None, what: str = "segmentation") -> dict:
    """Validate a COCO RLE (compressed str or uncompressed list counts) and return it unchanged.

    Raises:
        DataFormatError: missing size/counts, or a size other than the image's (when known).
    """
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2) or not isinstance(counts, (str, list)):
        raise DataFormatError(f"{what} RLE needs 'size': [h, w] and 'counts' (string or list of ints)")
    if height and width and [int(size[0]), int(size[1])] != [int(height), int(width)]:
        raise DataFormatError(
            f"{what} RLE size {size} differs from the image size [{height}, {width}] (h, w); fix either"
        )
    if isinstance(counts, list) and sum(counts) != int(size[0]) * int(size[1]):
        raise DataFormatError(f"{what} uncompressed RLE counts sum to {sum(counts)}, not h*w = {size[0] * size[1]}")
    return seg


def xywh_to_xyxy(bbox: Any, what: str = "bbox") -> tuple[float, float, float, float]:
    """[x, y, w, h] -> (x1, y1, x2, y2), checking four finite numbers and non-negative w, h."""
    x, y, w, h = check_numbers(bbox, 4, what)
    if w < 0 or h < 0:
        raise DataFormatError(f"{what} {list(bbox)} has negative width or height (COCO boxes are [x, y, w, h])")
    return (x, y, x + w, y + h)


def check_numbers(values: Any, n: int, what: str) -> list[float]:
    """Exactly `n` finite numbers as floats."""
    if not isinstance(values, (list, tuple)) or len(values) != n:
        raise DataFormatError(f"{what} must be a list of {n} numbers, got {str(values)[:60]!r}")
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError) as err:
        raise DataFormatError(f"{what} must be a list of {n} numbers, got {str(values)[:60]!r}") from err
    if not all(np.isfinite(out)):
        raise DataFormatError(f"{what} holds NaN or infinite values")
    return out


def check_box(box: tuple[float, float, float, float], width: Any, height: Any, what: str = "box") -> None:
    """Reject inverted or zero-area boxes and, when the size is known, boxes that miss the image entirely."""
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise DataFormatError(f"{what} {tuple(round(v, 2) for v in box)} has zero or negative area (x1<x2, y1<y2)")
    if width and height and (x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height):
        raise DataFormatError(
            f"{what} {tuple(round(v, 2) for v in box)} lies outside the {width}x{height} image; "
            "check the coordinate convention (xyxy vs xywh, pixels vs normalised)"
        )


def check_split(requested: str | None, present: Counter, source: str | Path) -> None:
    """Raise when a split is requested that the file does not define."""
    if requested is not None and requested not in present:
        names = ", ".join(f"{k} ({v})" for k, v in sorted(present.items(), key=lambda kv: str(kv[0])))
        raise DataFormatError(f"{source}: no split {requested!r}; the file has splits: {names or 'none'}")
