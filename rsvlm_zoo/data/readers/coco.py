"""COCO instance annotations (iSAID, NWPU VHR-10, ...): polygons, RLE and xywh boxes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from rsvlm_zoo.data.readers._common import (
    RecordErrors,
    check_box,
    check_split,
    expect,
    known_size,
    load_json,
    make_sample,
    parse_polygons,
    parse_rle,
    resolve_image,
    xywh_to_xyxy,
)
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample
from rsvlm_zoo.data.validation import validate_region


def coco_geometry(ann: dict, height: Any, width: Any, check_geometry: bool = True) -> dict[str, Any]:
    """Region geometry keywords (`polygons`, `rle`, `box`) from one COCO annotation.

    `segmentation` may be a list of polygons, the flat single-polygon quirk, or an RLE dict
    (compressed string or uncompressed list counts); `bbox` is [x, y, w, h] and becomes xyxy.
    """
    out: dict[str, Any] = {}
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        out["rle"] = parse_rle(seg, height, width)
    elif isinstance(seg, list) and seg:
        out["polygons"] = parse_polygons(seg)
    elif seg not in (None, []):
        raise DataFormatError(f"segmentation must be a polygon list or an RLE dict, got {type(seg).__name__}")
    if ann.get("bbox") is not None:
        out["box"] = xywh_to_xyxy(ann["bbox"])
        if check_geometry:
            check_box(out["box"], width, height, "bbox")
    if not out:
        raise DataFormatError("annotation has neither segmentation nor bbox; add one or remove it")
    return out


def category_names(data: dict, annotation: Path) -> dict[Any, str]:
    """Category id -> name (numeric names become strings)."""
    cats = data.get("categories") or []
    names: dict[Any, str] = {}
    for k, cat in enumerate(cats):
        if not isinstance(cat, dict) or "id" not in cat:
            raise DataFormatError(f"{annotation}: categories[{k}] needs an 'id' (and a 'name')")
        names[cat["id"]] = str(cat.get("name", cat["id"]))
    return names


def read_coco(
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    *,
    on_bad_record: str = "error",
    allow_outside_images: bool = False,
    check_geometry: bool = True,
    drop_crowd: bool = False,
    skip_empty: bool = False,
    encoding_errors: str = "strict",
) -> list[Sample]:
    """Read a COCO instances file; one sample per image, one region per annotation.

    Regions keep the file's geometry: polygons as (N, 2) arrays, RLE dicts as given, and the bbox
    converted to xyxy. Crowd annotations (`iscrowd: 1`) are kept with `attributes["iscrowd"] = True`
    unless `drop_crowd`. A bad annotation is one record: with `on_bad_record="skip"` only it is dropped.

    Args:
        annotation: `instances.json`.
        images: Image directory (default `<annotation dir>/images` or the annotation's dir).
        split: When images carry a `split` field, keep that split (unknown names are an error);
            otherwise the whole file is taken as that split.
        on_bad_record: `error` or `skip` (counted in the returned list's `.report`).
        allow_outside_images: Read images named outside `images` (absolute paths, `..`, links out).
        check_geometry: Reject zero-area boxes and boxes entirely outside the image.
        drop_crowd: Drop `iscrowd` annotations.
        skip_empty: Drop images without annotations.
        encoding_errors: `strict` or `replace` for non-UTF-8 bytes.
    """
    annotation = Path(annotation)
    data = load_json(annotation, encoding_errors)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataFormatError(f"{annotation}: expected a COCO object with 'images' and 'annotations' lists")
    if not isinstance(data.get("annotations", []), list):
        raise DataFormatError(f"{annotation}: 'annotations' must be a list")
    from rsvlm_zoo.data.readers.captions import default_image_dir

    folder = default_image_dir(annotation, images)
    names = category_names(data, annotation)
    has_split = any(isinstance(r, dict) and "split" in r for r in data["images"])
    if has_split:
        check_split(split, Counter(r.get("split") for r in data["images"] if isinstance(r, dict)), annotation)
    errors = RecordErrors(annotation, on_bad_record)
    by_id: dict[Any, Sample] = {}
    first_index: dict[Any, int] = {}
    for i, rec in enumerate(data["images"]):
        with errors.record(f"images[{i}]" + (f" id={rec.get('id')}" if isinstance(rec, dict) else "")):
            expect(rec, dict, "the image record")
            image_id = rec["id"]
            if image_id in first_index:
                raise DataFormatError(
                    f"image id {image_id} repeats images[{first_index[image_id]}]; image ids must be unique"
                )
            first_index[image_id] = i
            name = expect(rec["file_name"], str, "file_name")
            rec_split = rec.get("split") if has_split else split
            if has_split and split is not None and rec_split != split:
                continue
            by_id[image_id] = make_sample(
                resolve_image(folder, name, allow_outside_images),
                rec.get("width"),
                rec.get("height"),
                sample_id=str(image_id),
                source=str(annotation),
                split=rec_split,
                meta={"file_name": name},
            )
    first_ann: dict[Any, int] = {}
    for j, ann in enumerate(data.get("annotations", [])):
        with errors.record(f"annotations[{j}]" + (f" id={ann.get('id')}" if isinstance(ann, dict) else "")):
            expect(ann, dict, "the annotation")
            ann_id = ann.get("id")
            if ann_id is not None:
                if not isinstance(ann_id, (int, str)) or isinstance(ann_id, bool):
                    raise DataFormatError(f"annotation id {str(ann_id)[:40]!r} must be an integer or a string")
                if ann_id in first_ann:
                    raise DataFormatError(
                        f"annotation id {ann_id} repeats annotations[{first_ann[ann_id]}]; annotation ids must be "
                        "unique (a merged file holding an annotation twice?)"
                    )
                first_ann[ann_id] = j
            image_id = ann["image_id"]
            if image_id not in first_index:
                raise DataFormatError(f"image_id {image_id} is not in 'images'; add the image or fix the id")
            sample = by_id.get(image_id)
            if sample is None:  # other split, or its image record was skipped
                continue
            crowd = bool(ann.get("iscrowd", 0))
            if crowd and drop_crowd:
                continue
            cat = ann.get("category_id")
            if cat is not None and names and cat not in names:
                raise DataFormatError(f"category_id {cat} is not in 'categories'; add it or fix the id")
            w, h = known_size(sample)
            geometry = coco_geometry(ann, h, w, check_geometry)
            validate_region(Region(**geometry), w, h)
            attributes = {"iscrowd": crowd, "id": ann.get("id")}
            if "area" in ann:
                attributes["area"] = ann["area"]
            sample.regions.append(
                Region(
                    category=names.get(cat, None if cat is None else str(cat)),
                    attributes=attributes,
                    **geometry,
                )
            )
    samples = [s for s in by_id.values() if s.regions or not skip_empty]
    return errors.finish(samples)
