"""MGIMM's box-region files: region attributes (COCO-like) and detailed descriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsvlm_zoo.data.readers._common import (
    RecordErrors,
    check_box,
    expect,
    load_json,
    make_sample,
    resolve_image,
    xywh_to_xyxy,
)
from rsvlm_zoo.data.readers.captions import default_image_dir
from rsvlm_zoo.data.readers.turns import check_image_token, load_list, parse_conversation
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample, Turn
from rsvlm_zoo.tokens import MGIMM_ATTRIBUTE_PROMPT


def read_mgimm_region(
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    *,
    on_bad_record: str = "error",
    allow_outside_images: bool = False,
    check_geometry: bool = True,
    encoding_errors: str = "strict",
) -> list[Sample]:
    """Read MGIMM's region-attribute file; one sample per annotation (one box region, text = caption).

    The conversation is MGIMM's own attribute prompt answered by the caption.

    Args:
        annotation: `{images: [{id, file_name, width, height}], annotations: [{image_id, bbox, caption}]}`.
        images: Image directory (default `<annotation dir>/images` or the annotation's dir).
        split: Recorded on the samples.
        on_bad_record: `error` or `skip`; a bad annotation is one record.
        allow_outside_images: Read images named outside `images` (absolute paths, `..`, links out).
        check_geometry: Reject zero-area boxes and boxes entirely outside the image.
        encoding_errors: `strict` or `replace` for non-UTF-8 bytes.
    """
    annotation = Path(annotation)
    data = load_json(annotation, encoding_errors)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise DataFormatError(f"{annotation}: expected an object with 'images' and 'annotations' lists (MGIMM)")
    folder = default_image_dir(annotation, images)
    errors = RecordErrors(annotation, on_bad_record)
    by_id: dict[Any, dict] = {}
    for i, rec in enumerate(data["images"]):
        with errors.record(f"images[{i}]"):
            expect(rec, dict, "the image record")
            if rec["id"] in by_id:
                raise DataFormatError(f"image id {rec['id']} appears twice; image ids must be unique")
            expect(rec["file_name"], str, "file_name")
            by_id[rec["id"]] = rec
    samples: list[Sample] = []
    for j, ann in enumerate(data["annotations"]):
        with errors.record(f"annotations[{j}]" + (f" id={ann.get('id')}" if isinstance(ann, dict) else "")):
            expect(ann, dict, "the annotation")
            img = by_id.get(ann["image_id"])
            if img is None:
                raise DataFormatError(f"image_id {ann['image_id']} is not in 'images'; add the image or fix the id")
            caption = expect(ann["caption"], str, "caption")
            box = xywh_to_xyxy(ann["bbox"])
            if check_geometry:
                check_box(box, img.get("width"), img.get("height"), "bbox")
            samples.append(
                make_sample(
                    resolve_image(folder, img["file_name"], allow_outside_images),
                    img.get("width"),
                    img.get("height"),
                    regions=[Region(box=box, text=caption)],
                    conversation=[Turn("human", MGIMM_ATTRIBUTE_PROMPT), Turn("gpt", caption)],
                    sample_id=f"{ann['image_id']}:{ann.get('id', j)}",
                    source=str(annotation),
                    split=split,
                )
            )
    return errors.finish(samples)


def read_mgimm_description(
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    *,
    on_bad_record: str = "error",
    allow_outside_images: bool = False,
    check_geometry: bool = True,
    check_tokens: bool = True,
    encoding_errors: str = "strict",
) -> list[Sample]:
    """Read MGIMM's detailed descriptions `[{image_id, file_name, width, height, bbox, conversations}]`.

    `bbox` is a list of [x, y, w, h] boxes (one box region each); the conversation is kept as written.

    Args:
        annotation: The JSON list.
        images: Image directory (default `<annotation dir>/images` or the annotation's dir).
        split: Recorded on the samples.
        on_bad_record: `error` or `skip` (counted in the returned list's `.report`).
        allow_outside_images: Read images named outside `images` (absolute paths, `..`, links out).
        check_geometry: Reject zero-area boxes and boxes entirely outside the image.
        check_tokens: Require exactly one `<image>`.
        encoding_errors: `strict` or `replace` for non-UTF-8 bytes.
    """
    annotation = Path(annotation)
    records = load_list(annotation, encoding_errors, "MGIMM descriptions")
    folder = default_image_dir(annotation, images)
    errors = RecordErrors(annotation, on_bad_record)
    samples: list[Sample] = []
    for i, rec in enumerate(records):
        with errors.record(f"record {i}" + (f" image_id={rec.get('image_id')}" if isinstance(rec, dict) else "")):
            expect(rec, dict, "the record")
            w, h = rec.get("width"), rec.get("height")
            regions = []
            for k, bbox in enumerate(expect(rec["bbox"], list, "bbox")):
                box = xywh_to_xyxy(bbox, f"bbox[{k}]")
                if check_geometry:
                    check_box(box, w, h, f"bbox[{k}]")
                regions.append(Region(box=box))
            turns = parse_conversation(rec["conversations"])
            if check_tokens:
                check_image_token(turns)
            samples.append(
                make_sample(
                    resolve_image(folder, expect(rec["file_name"], str, "file_name"), allow_outside_images),
                    w,
                    h,
                    regions=regions,
                    conversation=turns,
                    sample_id=str(rec.get("image_id", i)),
                    source=str(annotation),
                    split=split,
                )
            )
    return errors.finish(samples)
