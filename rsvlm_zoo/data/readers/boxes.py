"""Box and oriented-box text formats: DOTA `labelTxt` and CSV box lists (deepforest)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from rsvlm_zoo.data.readers._common import RecordErrors, check_box, make_sample, resolve_image
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample
from rsvlm_zoo.data.validation import validate_box, validate_polygons

CSV_COLUMNS = ("image_path", "xmin", "ymin", "xmax", "ymax", "label")


def _dota_files(annotation: Path) -> list[Path]:
    if annotation.is_dir():
        files = sorted(annotation.glob("*.txt"))
        if not files:
            raise DataFormatError(f"{annotation}: no .txt files; point at the DOTA labelTxt folder or one file")
        return files
    if not annotation.is_file():
        raise DataFormatError(f"{annotation}: annotation file or directory not found; check the path")
    return [annotation]


def _dota_image_dir(annotation: Path) -> Path:
    label_dir = annotation if annotation.is_dir() else annotation.parent
    for cand in (label_dir.parent / "images", label_dir.parent / "images" / "images"):
        if cand.is_dir():
            return cand
    return label_dir


def parse_dota_line(line: str, where: str) -> Region:
    """`x1 y1 ... x4 y4 category [difficult]` -> Region with the quad polygon and its axis-aligned box."""
    parts = line.split()
    if len(parts) < 9:
        raise DataFormatError(
            f"{where}: {line.strip()!r} has {len(parts)} fields; expected 8 coordinates, "
            "a category and a difficult flag"
        )
    try:
        quad = np.asarray([float(v) for v in parts[:8]], dtype=np.float64).reshape(4, 2)
    except ValueError as err:
        raise DataFormatError(f"{where}: coordinates {parts[:8]} are not all numbers") from err
    try:
        validate_polygons([quad], None, None, "quad")
    except DataFormatError as err:
        raise DataFormatError(f"{where}: {err}") from err
    difficult = parts[9] not in ("0", "false") if len(parts) > 9 else False
    box = (float(quad[:, 0].min()), float(quad[:, 1].min()), float(quad[:, 0].max()), float(quad[:, 1].max()))
    return Region(polygons=[quad], box=box, category=parts[8], attributes={"difficult": difficult})


def read_dota(
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    *,
    on_bad_record: str = "error",
    allow_outside_images: bool = False,
    check_geometry: bool = True,
) -> list[Sample]:
    """Read DOTA `labelTxt` files; one sample per file, one region (quad polygon + box) per object line.

    Header lines (`imagesource:...`, `gsd:...`) go to `meta`; the `difficult` flag to the region's
    attributes. Sizes come lazily from the image headers.

    Args:
        annotation: The labelTxt folder or one `.txt` file.
        images: Folder of `<stem>.png` (or another extension); default `../images` beside labelTxt.
        split: Recorded on the samples.
        on_bad_record: `error` or `skip`; a bad object line is one record (only it is dropped).
        allow_outside_images: Read images named outside `images` (absolute paths, `..`, links out).
        check_geometry: Reject quads with zero-area boxes.
    """
    annotation = Path(annotation)
    files = _dota_files(annotation)
    folder = Path(images) if images is not None else _dota_image_dir(annotation)
    errors = RecordErrors(annotation, on_bad_record)
    samples: list[Sample] = []
    for path in files:
        lines: list[str] | None = None
        with errors.record(f"file {path.name}"):
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError as err:
                raise DataFormatError(f"cannot read the file ({err})") from err
        if lines is None:
            continue
        meta: dict[str, str] = {}
        regions: list[Region] = []
        for line_no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            head = line.split(":", 1)
            if len(head) == 2 and not head[0].strip().replace(".", "").replace("-", "").isdigit():
                meta[head[0].strip()] = head[1].strip()
                continue
            with errors.record(f"{path.name} line {line_no}"):
                region = parse_dota_line(line, f"line {line_no}")
                if check_geometry:
                    check_box(region.box, None, None, "quad")  # type: ignore[arg-type]
                regions.append(region)
        samples.append(
            make_sample(
                resolve_image(folder, path.stem + ".png", allow_outside_images),
                regions=regions,
                sample_id=path.stem,
                source=str(path),
                split=split,
                meta=meta,
            )
        )
    return errors.finish(samples)


def read_csv_boxes(
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    *,
    on_bad_record: str = "error",
    allow_outside_images: bool = False,
    check_geometry: bool = True,
) -> list[Sample]:
    """Read a CSV box list `image_path,xmin,ymin,xmax,ymax,label`; one sample per image, in first-seen order.

    A row whose four coordinates are all 0 marks an image without objects (deepforest's convention).
    Images are resolved like VOC's (`<images>/<image_path>`, else the same stem with another extension).

    Args:
        annotation: The CSV file.
        images: Image directory (default: the CSV's directory).
        split: Recorded on the samples.
        on_bad_record: `error` or `skip`; a bad row is one record.
        allow_outside_images: Read images named outside `images` (absolute paths, `..`, links out).
        check_geometry: Reject zero-area boxes.
    """
    annotation = Path(annotation)
    if not annotation.is_file():
        raise DataFormatError(f"{annotation}: annotation file not found; check the path")
    folder = Path(images) if images is not None else annotation.parent
    errors = RecordErrors(annotation, on_bad_record)
    by_image: dict[str, Sample] = {}
    with open(annotation, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFormatError(
                f"{annotation}: header {reader.fieldnames} lacks column(s) {missing}; expected {','.join(CSV_COLUMNS)}"
            )
        for row in reader:
            with errors.record(f"line {reader.line_num}"):
                name = (row["image_path"] or "").strip()
                if not name:
                    raise DataFormatError("empty image_path")
                try:
                    box = tuple(float(row[c]) for c in ("xmin", "ymin", "xmax", "ymax"))
                except (TypeError, ValueError) as err:
                    raise DataFormatError(f"coordinates {[row[c] for c in CSV_COLUMNS[1:5]]} are not numbers") from err
                validate_box(box, None, None)
                sample = by_image.get(name)
                if sample is None:
                    sample = by_image[name] = make_sample(
                        resolve_image(folder, name, allow_outside_images),
                        sample_id=name,
                        source=str(annotation),
                        split=split,
                    )
                if not any(box):
                    continue
                if check_geometry:
                    check_box(box, None, None, "box")  # type: ignore[arg-type]
                sample.regions.append(Region(box=box, category=(row["label"] or "").strip() or None))  # type: ignore[arg-type]
    return errors.finish(list(by_image.values()))
