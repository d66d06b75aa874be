"""Osprey-style region conversations (mask regions referenced by `<mask><pos>`)."""

from __future__ import annotations

from pathlib import Path

from rsvlm_zoo.data.readers._common import RecordErrors, expect, make_sample, resolve_image
from rsvlm_zoo.data.readers.captions import default_image_dir
from rsvlm_zoo.data.readers.coco import coco_geometry
from rsvlm_zoo.data.readers.turns import (
    check_image_token,
    check_mask_count,
    description_turns,
    load_list,
    osprey_prefix,
    parse_conversation,
)
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample
from rsvlm_zoo.data.validation import validate_region


def read_osprey(
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    *,
    on_bad_record: str = "error",
    allow_outside_images: bool = False,
    check_geometry: bool = True,
    check_tokens: bool = True,
    add_region_prefix: bool = False,
    encoding_errors: str = "strict",
) -> list[Sample]:
    """Read Osprey-style region conversations: `[{file_name, height, width, annotation, conversations}]`.

    `annotation[k]` gives region k (polygons or RLE in `segmentation`, xywh `bbox`, optional
    `category`/`category_id`). A `description: ["<regionN>: text"]` list instead of `conversations`
    becomes one question per region. The text must hold `<image>` once and one `<mask><pos>` per
    region (or per entry of a record's `region_refs`).

    Args:
        annotation: The JSON list.
        images: Image directory (default `<annotation dir>/images` or the annotation's dir).
        split: Recorded on the samples.
        on_bad_record: `error` or `skip` (counted in the returned list's `.report`).
        allow_outside_images: Read images named outside `images` (absolute paths, `..`, links out).
        check_geometry: Reject zero-area boxes and boxes entirely outside the image.
        check_tokens: Check the `<image>` and `<mask><pos>` counts (the checker turns this off to count).
        add_region_prefix: Raw Osprey-724K files carry no tokens: prepend Osprey's overview and
            "There are N part regions in the picture: region1<mask><pos>, ..." to the first question.
        encoding_errors: `strict` or `replace` for non-UTF-8 bytes.
    """
    annotation = Path(annotation)
    records = load_list(annotation, encoding_errors, "Osprey")
    folder = default_image_dir(annotation, images)
    errors = RecordErrors(annotation, on_bad_record)
    samples: list[Sample] = []
    for i, rec in enumerate(records):
        with errors.record(f"record {i}" + (f" ({rec.get('file_name')})" if isinstance(rec, dict) else "")):
            expect(rec, dict, "the record")
            name = expect(rec["file_name"], str, "file_name")
            h, w = rec.get("height"), rec.get("width")
            regions = []
            for k, ann in enumerate(expect(rec["annotation"], list, "annotation")):
                expect(ann, dict, f"annotation[{k}]")
                try:
                    geometry = coco_geometry(ann, h, w, check_geometry)
                except DataFormatError as err:
                    raise DataFormatError(f"annotation[{k}]: {err}") from err
                cat = ann.get("category", ann.get("category_name", ann.get("category_id")))
                region = Region(category=None if cat is None else str(cat), **geometry)
                try:
                    validate_region(region, w, h)
                except DataFormatError as err:
                    raise DataFormatError(f"annotation[{k}]: {err}") from err
                regions.append(region)
            refs = rec.get("region_refs")
            if refs is not None:
                refs = [expect(r, int, f"region_refs[{k}]") for k, r in enumerate(expect(refs, list, "region_refs"))]
            if "conversations" in rec:
                turns = parse_conversation(rec["conversations"])
                if add_region_prefix:
                    turns = osprey_prefix(turns, len(regions))
            elif "description" in rec:
                turns, refs = description_turns(rec["description"], len(regions))
            else:
                raise KeyError("conversations")
            if check_tokens:
                check_image_token(turns)
                check_mask_count(turns, len(regions), refs)
            samples.append(
                make_sample(
                    resolve_image(folder, name, allow_outside_images),
                    w,
                    h,
                    regions=regions,
                    conversation=turns,
                    region_refs=refs,
                    sample_id=str(rec.get("id", i)),
                    source=str(annotation),
                    split=split,
                )
            )
    return errors.finish(samples)
