"""Pascal VOC XML boxes and DIOR-RSVG (VOC-like XML with per-object referring expressions)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from rsvlm_zoo.data.readers._common import RecordErrors, check_box, make_sample, resolve_image
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample
from rsvlm_zoo.data.validation import validate_box

DIOR_SPLITS = ("train", "val", "test")


def parse_voc_xml(path: Path) -> dict[str, Any]:
    """One VOC XML -> `{filename, width, height, objects: [{name, box, description, attributes}]}`.

    Raises:
        DataFormatError: unparsable XML (with line/column), or objects without name/box numbers.
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        line, col = err.position
        raise DataFormatError(f"{path}: invalid XML at line {line} column {col}: {err}; fix the file") from err
    except OSError as err:
        raise DataFormatError(f"{path}: cannot read the annotation file ({err})") from err

    def number(node: ET.Element | None, tag: str, where: str) -> float | None:
        text = node.findtext(tag) if node is not None else None
        if text is None or not text.strip():
            return None
        try:
            value = float(text)
        except ValueError as err:
            raise DataFormatError(f"{path}: {where} <{tag}> is {text!r}, not a number") from err
        if not math.isfinite(value):
            raise DataFormatError(f"{path}: {where} <{tag}> is {text.strip()!r}, not a finite number; fix the file")
        return value

    size = root.find("size")
    objects = []
    for k, obj in enumerate(root.findall("object")):
        where = f"object {k}"
        name = (obj.findtext("name") or "").strip()
        box_node = obj.find("bndbox")
        coords = [number(box_node, t, where) for t in ("xmin", "ymin", "xmax", "ymax")]
        if not name or any(c is None for c in coords):
            raise DataFormatError(f"{path}: {where} needs <name> and <bndbox> with xmin, ymin, xmax, ymax")
        attributes: dict[str, Any] = {}
        for tag in ("difficult", "truncated", "occluded"):
            if obj.findtext(tag) is not None and obj.findtext(tag).strip():
                attributes[tag] = obj.findtext(tag).strip() not in ("0", "false", "False")
        if obj.findtext("pose"):
            attributes["pose"] = obj.findtext("pose").strip()
        description = obj.findtext("description")
        objects.append(
            {
                "name": name,
                "box": tuple(coords),
                "attributes": attributes,
                "description": description.strip() if description else None,
            }
        )
    width, height = number(size, "width", "<size>"), number(size, "height", "<size>")
    return {
        "filename": (root.findtext("filename") or "").strip() or path.stem,
        "width": int(width) if width else None,
        "height": int(height) if height else None,
        "objects": objects,
    }


def xml_files(annotation: Path) -> list[Path]:
    """The XML file itself, or the sorted XMLs of a directory."""
    if annotation.is_dir():
        files = sorted(annotation.glob("*.xml"))
        if not files:
            raise DataFormatError(f"{annotation}: no .xml files in the directory; point at the Annotations folder")
        return files
    if not annotation.is_file():
        raise DataFormatError(f"{annotation}: annotation file or directory not found; check the path")
    return [annotation]


def read_voc(
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    *,
    on_bad_record: str = "error",
    allow_outside_images: bool = False,
    check_geometry: bool = True,
) -> list[Sample]:
    """Read Pascal VOC XML (one file or a directory of them); one sample per XML, one box region per object.

    Boxes are kept as written (VOC's 1-based inclusive pixel corners, not shifted). The image is
    `<images>/<filename>`, or the same stem with another image extension when that file is absent.

    Args:
        annotation: An XML file or a directory of XML files.
        images: Image directory (default: the annotation's directory, or `../JPEGImages` beside an
            `Annotations` directory).
        split: Recorded on the samples.
        on_bad_record: `error` or `skip` (counted in the returned list's `.report`).
        allow_outside_images: Read images named outside `images` (absolute paths, `..`, links out).
        check_geometry: Reject zero-area boxes and boxes entirely outside the image.
    """
    annotation = Path(annotation)
    files = xml_files(annotation)
    folder = Path(images) if images is not None else _voc_image_dir(annotation)
    errors = RecordErrors(annotation, on_bad_record)
    samples: list[Sample] = []
    for path in files:
        with errors.record(f"file {path.name}"):
            doc = parse_voc_xml(path)
            regions = []
            for k, obj in enumerate(doc["objects"]):
                validate_box(obj["box"], doc["width"], doc["height"], f"object {k} ({obj['name']}) box")
                if check_geometry:
                    check_box(obj["box"], doc["width"], doc["height"], f"object {k} ({obj['name']}) box")
                regions.append(
                    Region(
                        box=obj["box"],
                        category=obj["name"],
                        text=obj["description"],
                        attributes=obj["attributes"],
                    )
                )
            samples.append(
                make_sample(
                    resolve_image(folder, doc["filename"], allow_outside_images),
                    doc["width"],
                    doc["height"],
                    regions=regions,
                    sample_id=path.stem,
                    source=str(path),
                    split=split,
                )
            )
    return errors.finish(samples)


def _voc_image_dir(annotation: Path) -> Path:
    folder = annotation if annotation.is_dir() else annotation.parent
    if folder.name == "Annotations" and (folder.parent / "JPEGImages").is_dir():
        return folder.parent / "JPEGImages"
    return folder


def read_dior_rsvg(
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    *,
    on_bad_record: str = "error",
    allow_outside_images: bool = False,
    check_geometry: bool = True,
) -> list[Sample]:
    """Read DIOR-RSVG: one sample per object (box region, category = `<name>`, text = `<description>`).

    Split files (`train.txt`, `val.txt`, `test.txt` in the root) hold running object indices over all
    objects of `Annotations/*.xml` taken in sorted file order. Without a split, all objects are read.

    Args:
        annotation: The dataset root (holding `Annotations/`), or the `Annotations` folder itself.
        images: Image folder (default `<root>/JPEGImages`).
        split: `train`, `val` or `test` (any `<root>/<split>.txt`).
        on_bad_record: `error` or `skip` (an XML file is one record).
        allow_outside_images: Read images named outside `images` (absolute paths, `..`, links out).
        check_geometry: Reject zero-area boxes and boxes entirely outside the image.
    """
    root = Path(annotation)
    if root.name == "Annotations":
        root = root.parent
    ann_dir = root / "Annotations"
    if not ann_dir.is_dir():
        raise DataFormatError(f"{root}: no Annotations/ folder; pass the DIOR-RSVG root directory")
    folder = Path(images) if images is not None else root / "JPEGImages"
    errors = RecordErrors(root, on_bad_record)
    objects: list[Sample | None] = []  # None keeps the running index of a skipped object
    lost: list[str] = []
    for path in xml_files(ann_dir):
        doc = None
        with errors.record(f"file {path.name}"):
            doc = parse_voc_xml(path)
        if doc is None:
            lost.append(path.name)
            continue
        for k, obj in enumerate(doc["objects"]):
            objects.append(None)
            with errors.record(f"file {path.name} object {k} (index {len(objects) - 1})"):
                if check_geometry:
                    check_box(obj["box"], doc["width"], doc["height"], f"box of {obj['name']}")
                region = Region(box=obj["box"], category=obj["name"], text=obj["description"])
                objects[-1] = make_sample(
                    resolve_image(folder, doc["filename"], allow_outside_images),
                    doc["width"],
                    doc["height"],
                    regions=[region],
                    sample_id=str(len(objects) - 1),
                    source=str(path),
                    meta={"file": path.name, "object": k, "object_index": len(objects) - 1},
                )
    if split is None:
        return errors.finish([s for s in objects if s is not None])
    if lost:
        raise DataFormatError(
            f"{root}: cannot map {split}.txt object indices because {len(lost)} XML file(s) "
            "could not be read "
            f"(first: {lost[0]}); fix them first"
        )
    split_file = root / f"{split}.txt"
    if not split_file.is_file():
        present = sorted(p.stem for p in root.glob("*.txt"))
        raise DataFormatError(f"{root}: no split file {split_file.name}; split files present: {present or 'none'}")
    chosen = []
    for line_no, line in enumerate(split_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            index = int(line.strip())
        except ValueError as err:
            raise DataFormatError(f"{split_file}: line {line_no} is {line!r}, not an object index") from err
        if not 0 <= index < len(objects):
            raise DataFormatError(
                f"{split_file}: line {line_no} names object index {index} but only {len(objects)} objects "
                "were "
                f"found in {ann_dir}; the split file belongs to the full set (check Annotations is complete)"
            )
        sample = objects[index]
        if sample is not None:
            sample.split = split
            chosen.append(sample)
    return errors.finish(chosen)
