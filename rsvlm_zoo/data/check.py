"""Check an annotation source: read it with its reader, report counts and problems as a table (`rsvlm data check`).

Kept in one file (a little over 300 lines) on purpose: the report, the per-record checks and the two entry points
(annotation files and packed shards) share the problem table `PROBLEMS`, whose order is the report's order.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsvlm_zoo.data.images import TIFF_SUFFIXES, ImageReadError, check_tiff, image_size, open_pil
from rsvlm_zoo.data.readers import read_annotations
from rsvlm_zoo.data.readers._common import known_size
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample
from rsvlm_zoo.data.validation import validate_region
from rsvlm_zoo.progress import progress

# Problem kinds in table order; the value says whether the kind fails the check (True) or only warns.
PROBLEMS = {
    "bad records (skipped)": True,
    "invalid geometry": True,
    "missing images": True,
    "unreadable images": True,
    "image size differs from annotation": True,
    "empty masks": True,
    "masks outside the image": True,
    "zero-area boxes": True,
    "boxes outside the image": True,
    "boxes crossing the border": False,
    "<mask> refs without a region": True,
    "regions never referenced": True,
}
MAX_EXAMPLES = 3
MAX_CATEGORIES = 15
BORDER_TOLERANCE = 1.0


@dataclass
class CheckReport:
    """Counts and problems found in one annotation source.

    Attributes:
        format: Reader name.
        annotation: The annotation file or directory.
        samples: Samples read.
        images: Distinct image files.
        regions: Regions (objects) over all samples.
        splits: Samples per split.
        categories: Regions per category.
        problems: Count per kind of `PROBLEMS`.
        examples: Up to three messages per problem kind (file, record).
    """

    format: str
    annotation: str
    samples: int = 0
    images: int = 0
    regions: int = 0
    splits: Counter = field(default_factory=Counter)
    categories: Counter = field(default_factory=Counter)
    problems: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, where: str, n: int = 1) -> None:
        """Count `n` problems of `kind` found at `where`."""
        self.problems[kind] += n
        self.examples.setdefault(kind, [])
        if len(self.examples[kind]) < MAX_EXAMPLES:
            self.examples[kind].append(where)

    @property
    def errors(self) -> int:
        """Problems that fail the check (warnings excluded)."""
        return sum(n for kind, n in self.problems.items() if PROBLEMS.get(kind, True))

    def table(self) -> str:
        """A compact aligned table of the counts and problems, then a few examples per problem."""
        rows: list[tuple[str, str, str]] = [
            ("samples", str(self.samples), ""),
            ("images", str(self.images), ""),
            ("regions", str(self.regions), ""),
        ]
        rows += [(f"split {k}", str(v), "") for k, v in sorted(self.splits.items(), key=lambda kv: str(kv[0]))]
        cats = self.categories.most_common()
        rows += [(f"category {k}", str(v), "") for k, v in cats[:MAX_CATEGORIES]]
        if len(cats) > MAX_CATEGORIES:
            rest = sum(v for _, v in cats[MAX_CATEGORIES:])
            rows.append((f"category ({len(cats) - MAX_CATEGORIES} more)", str(rest), ""))
        for kind, fails in PROBLEMS.items():
            n = self.problems.get(kind, 0)
            rows.append((kind, str(n), "ok" if n == 0 else ("ERROR" if fails else "warn")))
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        lines = [f"{self.format} {self.annotation}"]
        lines += [f"  {a:<{w0}}  {b:>{w1}}  {c}".rstrip() for a, b, c in rows]
        for kind, found in self.examples.items():
            for where in found:
                lines.append(f"  {kind}: {where}")
        lines.append(f"{'FAILED' if self.errors else 'OK'}: {self.errors} error(s)")
        return "\n".join(lines)


def check_image(path: Path) -> tuple[int, int]:
    """(width, height), as `load_image` returns the image, after a header-level check (no pixels decoded).

    Checked: the pixel limit (`rsvlm_zoo.data.images.MAX_IMAGE_PIXELS`), PIL `verify()`, the JPEG end marker,
    and for TIFFs (read with tifffile) that every page's strips or tiles lie inside the file.

    Raises:
        ImageReadError: missing, unreadable, over the pixel limit, or truncated (JPEG, TIFF) file.
    """
    size = image_size(path)  # raises on missing / unreadable header / over the pixel limit
    is_tiff = path.suffix.lower() in TIFF_SUFFIXES
    try:
        with open_pil(path) as im:
            im.verify()
    except ImageReadError:
        raise
    except Exception as err:  # noqa: BLE001 - PIL raises many types for broken files
        if not is_tiff:  # multiband TIFFs PIL cannot parse are fine: tifffile checks them below
            raise ImageReadError(f"{path}: image fails verification ({err}); re-download or re-encode it") from err
    if is_tiff:
        check_tiff(path)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 1024))
            if b"\xff\xd9" not in f.read():
                raise ImageReadError(f"{path}: JPEG has no end marker (truncated); re-download it")
    return size


def _mask_problem(region: Region, width: int, height: int) -> str | None:
    if region.mask is not None:
        mask = np.asarray(region.mask)
        if mask.shape != (height, width):
            return "masks outside the image"
        return None if mask.any() else "empty masks"
    if region.rle is not None:
        size = [int(v) for v in region.rle.get("size", [])]
        if size != [height, width]:
            return "masks outside the image"
        counts = region.rle.get("counts")
        if isinstance(counts, list):
            area = sum(counts[1::2])
        else:
            from pycocotools import mask as mask_utils

            area = int(mask_utils.area({"size": size, "counts": str(counts).encode("ascii")}))
        return None if area > 0 else "empty masks"
    if region.polygons:
        areas, inside = 0.0, False
        for poly in region.polygons:
            p = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
            x, y = p[:, 0], p[:, 1]
            areas += 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
            inside |= bool(x.max() > 0 and y.max() > 0 and x.min() < width and y.min() < height)
        if not inside:
            return "masks outside the image"
        return None if areas > 0 else "empty masks"
    return None


def _box_problem(box: tuple[float, float, float, float], width: int, height: int) -> str | None:
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        return "zero-area boxes"
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        return "boxes outside the image"
    t = BORDER_TOLERANCE
    if x1 < -t or y1 < -t or x2 > width + t or y2 > height + t:
        return "boxes crossing the border"
    return None


def _check_sample(report: CheckReport, sample: Sample, size: tuple[int, int] | None) -> None:
    where = sample.where()
    if size is not None:
        width, height = size
        for k, region in enumerate(sample.regions):
            try:
                validate_region(region, width, height)  # the rule the training path applies
            except DataFormatError as err:
                report.add("invalid geometry", f"{where} region {k}: {err}")
                continue
            for kind in (
                _mask_problem(region, width, height),
                region.box and _box_problem(region.box, width, height),
            ):
                if kind:
                    report.add(kind, f"{where} region {k}")
    text = "".join(t.text for t in sample.conversation)
    n_mask = text.count("<mask>")
    if n_mask or (report.format == "osprey" and sample.regions):
        refs = sample.region_refs if sample.region_refs is not None else list(range(n_mask))
        n_regions = len(sample.regions)
        dangling = sum(1 for r in refs if not 0 <= r < n_regions) + max(0, n_mask - len(refs))
        unused = len(set(range(n_regions)) - set(refs))
        if dangling:
            report.add("<mask> refs without a region", f"{where}: {n_mask} <mask> for {n_regions} regions", dangling)
        if unused:
            report.add("regions never referenced", f"{where}: {n_mask} <mask> for {n_regions} regions", unused)


def check_dataset(
    format: str,
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    **options: Any,
) -> CheckReport:
    """Read `annotation` leniently with reader `format` and count samples, regions and problems.

    Bad records are skipped and counted; images are checked at header level (`check_image`). Format
    `shards` reads a folder written by `rsvlm data pack` (`check_shards`).

    Raises:
        DataFormatError: file-level problems (missing file, invalid JSON/XML, unknown split).
        ValueError: unknown format.
    """
    if format == SHARDS_FORMAT:
        return check_shards(annotation)
    options = {"on_bad_record": "skip", "check_geometry": False, "check_tokens": False, **options}
    readers_log = logging.getLogger("rsvlm_zoo.data.readers")
    level = readers_log.level
    readers_log.setLevel(logging.ERROR)  # skipped records are reported in the table, not logged
    try:
        samples = read_annotations(format, annotation, images, split, **options)
    finally:
        readers_log.setLevel(level)
    report = CheckReport(format, str(annotation), samples=len(samples))
    read_report = getattr(samples, "report", None)
    if read_report is not None and read_report.skipped:
        for reason in read_report.reasons:
            report.add("bad records (skipped)", reason)
    image_sizes: dict[str, tuple[int, int] | None] = {}
    for sample in progress(samples, desc=f"check {Path(str(annotation)).name}", unit="sample"):
        report.splits[sample.split if sample.split is not None else "-"] += 1
        report.regions += len(sample.regions)
        report.categories.update(r.category for r in sample.regions if r.category is not None)
        size: tuple[int, int] | None = None
        if isinstance(sample.image, np.ndarray):
            size = (sample.width, sample.height)
        else:
            key = str(sample.image)
            if key not in image_sizes:
                try:
                    image_sizes[key] = check_image(Path(key))
                except ImageReadError as err:
                    image_sizes[key] = None
                    missing = not Path(key).is_file()
                    report.add("missing images" if missing else "unreadable images", str(err).split(";")[0])
            actual = image_sizes[key]
            declared = known_size(sample)
            if actual is not None and declared[0] is not None and declared != actual:
                report.add("image size differs from annotation", f"{sample.where()}: {declared} vs file {actual}")
            size = declared if declared[0] is not None else actual  # type: ignore[assignment]
        _check_sample(report, sample, size)
    report.images = len(image_sizes) or len(samples)
    return report


SHARDS_FORMAT = "shards"
# Kinds `rsvlm data pack` records when it skips a sample, as the problem kinds of this table.
PACK_SKIPS = {
    "bad records (skipped)": "bad records (skipped)",
    "missing images": "missing images",
    "unreadable images": "unreadable images",
    "invalid geometry": "invalid geometry",
}


def check_shards(folder: str | Path) -> CheckReport:
    """Counts and problems of a shard folder written by `rsvlm data pack` (format `shards`).

    Samples, distinct original images, regions, splits and categories are counted from the packed records
    (no image is decoded); the records the reader skipped when packing, and the samples packing skipped, are
    reported from `pack.json` under the same problem kinds as `check_dataset`; every packed sample's geometry
    and `<mask>` references are checked at the packed size. A squash pack reports the counts of the file it
    was packed from; a tile pack counts its tiles as samples.

    Raises:
        DataFormatError: the folder is not a pack (no `index.json`).
        ImportError: LitData missing.
    """
    from rsvlm_zoo.data.sources.streaming import StreamingSource

    try:
        source = StreamingSource(folder)
    except FileNotFoundError as err:
        raise DataFormatError(str(err)) from err
    manifest = source.manifest
    report = CheckReport(manifest.get("format", SHARDS_FORMAT), str(folder), samples=len(source))
    report.format = f"{SHARDS_FORMAT} ({report.format}, {manifest.get('image_policy', '?')})"
    for kind, n in manifest.get("skipped", {}).items():
        if kind in PACK_SKIPS and n:
            reasons = manifest.get("reasons", {}).get(kind, [])
            for k in range(n):
                report.add(PACK_SKIPS[kind], reasons[k] if k < len(reasons) else "(more in pack.json)")
    images: set[str] = set()
    for i in progress(range(len(source)), desc=f"check {Path(str(folder)).name}", unit="sample"):
        provenance, sample, _ = source.record(i)
        images.add(provenance.get("image", ""))
        report.splits[sample.split if sample.split is not None else "-"] += 1
        report.regions += len(sample.regions)
        report.categories.update(r.category for r in sample.regions if r.category is not None)
        _check_sample(report, sample, (sample.width, sample.height))
    report.images = len(images) or len(source)
    return report
