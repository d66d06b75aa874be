"""Osprey region conversations: the tokenised form (`<mask><pos>` in the text) and Osprey-724K's raw files.

Which form a file holds is decided per file: text with `<mask>` tokens is read as written; text that names regions
as `<regionN>` without any `<mask>` is an Osprey-724K file, read as Osprey's own loader reads it (region list,
short-answer suffix, LVIS yes/no questions or description templates; see `osprey_724k`), the kind taken from the
file name Osprey-724K uses or from the `kind` option. A file mixing both forms, or whose conversations reference no
region at all while regions exist, is refused with an error naming the record and the `kind` option.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsvlm_zoo.data.readers._common import RecordErrors, expect, make_sample, resolve_image
from rsvlm_zoo.data.readers.captions import default_image_dir
from rsvlm_zoo.data.readers.coco import coco_geometry
from rsvlm_zoo.data.readers.osprey_724k import (
    DESCRIPTION_CHOICES,
    KINDS,
    PREFIX_STYLES,
    RAW_KINDS,
    detailed_description,
    kind_from_file_name,
    raw_conversation,
    reference_forms,
)
from rsvlm_zoo.data.readers.turns import check_image_token, check_mask_count, load_list, parse_conversation
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample, Turn
from rsvlm_zoo.data.validation import validate_region

_RAW_CHOICES = "kind=conversation (or short-form, part-level, lvis-pos-neg)"


def _record_name(index: int, rec: Any) -> str:
    return f"record {index}" + (f" ({rec.get('file_name')})" if isinstance(rec, dict) else "")


def _conversation_texts(rec: Any) -> list[str] | None:
    """The text values of a record's `conversations`, or None when it has none (or they are malformed)."""
    if not isinstance(rec, dict) or not isinstance(rec.get("conversations"), list):
        return None
    return [t["value"] for t in rec["conversations"] if isinstance(t, dict) and isinstance(t.get("value"), str)]


def detect_kind(annotation: Path, records: list[Any]) -> str:
    """The record kind of a whole file: `tokens`, or one of `RAW_KINDS` for Osprey-724K's `<regionN>` text.

    Raises:
        DataFormatError: (the reader adds the file's name) records of both forms in one file, or no region
            referenced in either form while records have regions and the file name does not say which
            Osprey-724K file it is; the message names a record and the `kind` option.
    """
    by_name = kind_from_file_name(annotation)
    first_tokens = first_raw = first_silent = None
    for i, rec in enumerate(records):
        texts = _conversation_texts(rec)
        if texts is None:
            continue
        has_mask, has_ref = reference_forms(texts)
        if has_mask and not has_ref and first_tokens is None:
            first_tokens = i
        elif has_ref and not has_mask and first_raw is None:
            first_raw = i
        elif not has_mask and not has_ref and first_silent is None and rec.get("annotation"):
            first_silent = i
    if first_tokens is not None and first_raw is not None:
        raise DataFormatError(
            f"{_record_name(first_tokens, records[first_tokens])} references regions with <mask><pos> "
            f"tokens but {_record_name(first_raw, records[first_raw])} as <regionN> without <mask> (Osprey-724K's "
            f"raw text); a file holds one form: split it, or read it with --option kind=tokens or {_RAW_CHOICES}"
        )
    if first_raw is not None:
        return by_name if by_name in RAW_KINDS else "conversation"
    if first_tokens is not None:
        return "tokens"
    if by_name in RAW_KINDS:
        return by_name
    if first_silent is not None:
        rec = records[first_silent]
        raise DataFormatError(
            f"{_record_name(first_silent, rec)} has {len(rec['annotation'])} regions but no record "
            "references a region, neither as <mask><pos> nor as <regionN>; say how to read the file: "
            f"--option {_RAW_CHOICES} lists every region before the first question as Osprey's loader does, "
            "--option kind=tokens reads the text as written"
        )
    return "tokens"


def _image(folder: Path, name: str, allow_outside: bool) -> Path:
    """The image; Osprey's loader drops the `COCO_train2014_` prefix of a name, so that name is tried second."""
    path = resolve_image(folder, name, allow_outside)
    if not path.exists() and "_" in name:
        short = resolve_image(folder, name.split("_")[-1], allow_outside)
        if short.exists():
            return short
    return path


def _check_option(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def read_osprey(
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    *,
    on_bad_record: str = "error",
    allow_outside_images: bool = False,
    check_geometry: bool = True,
    check_tokens: bool = True,
    kind: str = "auto",
    region_prefix: str = "osprey",
    description_questions: str = "varied",
    add_region_prefix: bool = False,
    encoding_errors: str = "strict",
) -> list[Sample]:
    """Read Osprey region conversations: `[{file_name, height, width, annotation, conversations | description}]`.

    `annotation[k]` gives region k (polygons or RLE in `segmentation`, xywh `bbox`, optional
    `category`/`category_id`). The text is read in one of two forms, decided per file (`kind="auto"`):

    - tokens: `<image>` once and one `<mask><pos>` per region (or per entry of a record's `region_refs`);
    - Osprey-724K's raw files, whose text names regions `<regionN>` and holds no `<mask>`: each record becomes
      the conversation Osprey's loader builds for the file's kind (`osprey_724k`): `conversation` (overview line
      and region list before the first question, `<` and `>` removed), `short-form` and `part-level` (the same,
      each question ending "Answer the question using a single word or phrase."), `lvis-pos-neg` (`<regionN>`
      replaced in place by `<mask><pos>`). The kind comes from Osprey-724K's file name, else `conversation`.
      As in Osprey's loader, a record without a question-answer pair is dropped (counted in `.report`) and a
      question without an answer at the end is left out.

    A record with `description: ["<regionN>: text"]` instead of `conversations` (Osprey-724K's detailed
    descriptions) becomes one templated question per entry. Each sample's `meta["osprey_kind"]` says how it was
    read.

    Args:
        annotation: The JSON list.
        images: Image directory (default `<annotation dir>/images` or the annotation's dir). A name such as
            `COCO_train2014_000000123.jpg` that is absent is looked up as `000000123.jpg`, as Osprey's loader does.
        split: Recorded on the samples.
        on_bad_record: `error` or `skip` (counted in the returned list's `.report`).
        allow_outside_images: Read images named outside `images` (absolute paths, `..`, links out).
        check_geometry: Reject zero-area boxes and boxes entirely outside the image.
        check_tokens: Check the `<image>` and `<mask><pos>` counts (the checker turns this off to count).
        kind: `auto` (detect per file), `tokens`, `conversation`, `short-form`, `part-level`, `lvis-pos-neg`;
            `detailed-description` reads `conversations` records as `conversation` (its own records carry a
            `description` list, read the same under every kind).
        region_prefix: Region list of the raw conversation kinds: `osprey` (Osprey's loader verbatim, "Ther are N
            part regions in the picture: region1<mask><pos>,region2<mask><pos>. ") or `zoo` (the form the models'
            `describe()` asks with: "There are N part regions in the picture: region1<mask><pos>, ...", a line break).
        description_questions: `varied` (one of Osprey's 30 templates per entry, fixed per record) or `first`.
        add_region_prefix: The earlier spelling of `kind="conversation", region_prefix="zoo"`.
        encoding_errors: `strict` or `replace` for non-UTF-8 bytes.

    Raises:
        DataFormatError: bad records (see `on_bad_record`); a file whose form is ambiguous (both forms, or no
            region referenced) names a record and the `kind` option.
        ValueError: an unknown `kind`, `region_prefix` or `description_questions`.
    """
    _check_option("kind", kind, KINDS)
    _check_option("region_prefix", region_prefix, PREFIX_STYLES)
    _check_option("description_questions", description_questions, DESCRIPTION_CHOICES)
    if add_region_prefix:
        kind, region_prefix = ("conversation" if kind == "auto" else kind), "zoo"
    annotation = Path(annotation)
    records = load_list(annotation, encoding_errors, "Osprey")
    folder = default_image_dir(annotation, images)
    errors = RecordErrors(annotation, on_bad_record)
    if kind == "auto":
        with errors.record("file form"):
            kind = detect_kind(annotation, records)
        if kind == "auto":  # the file's form was refused and on_bad_record is "skip": nothing is read
            errors.report.skipped = len(records)
            return errors.finish([])
    elif kind == "detailed-description":
        kind = "conversation"
    samples: list[Sample] = []
    for i, rec in enumerate(records):
        with errors.record(_record_name(i, rec)):
            expect(rec, dict, "the record")
            name = expect(rec["file_name"], str, "file_name")
            h, w = rec.get("height"), rec.get("width")
            regions = _regions(rec, h, w, check_geometry)
            refs = rec.get("region_refs")
            if refs is not None:
                refs = [expect(r, int, f"region_refs[{k}]") for k, r in enumerate(expect(refs, list, "region_refs"))]
            record_kind = kind
            if "conversations" in rec:
                raw = expect(rec["conversations"], list, "conversations")
                if record_kind in RAW_KINDS:
                    if len(raw) < 2:  # Osprey's loader drops records without a question-answer pair
                        errors.report.skipped += 1
                        errors.report.reasons.append(
                            f"{annotation}: {_record_name(i, rec)}: no question-answer pair (dropped, as Osprey does)"
                        )
                        continue
                    turns, refs = raw_conversation(
                        parse_conversation(raw[: len(raw) // 2 * 2]), len(regions), record_kind, region_prefix
                    )
                else:
                    turns = parse_conversation(raw)
                    _refuse_both_forms(turns)
            elif "description" in rec:
                record_kind = "detailed-description"
                key = f"{name}#{rec.get('id', i)}"
                turns, refs = detailed_description(rec["description"], len(regions), key, description_questions)
            else:
                raise KeyError("conversations")
            if check_tokens:
                check_image_token(turns)
                _check_masks(turns, len(regions), refs)
            samples.append(
                make_sample(
                    _image(folder, name, allow_outside_images),
                    w,
                    h,
                    regions=regions,
                    conversation=turns,
                    region_refs=refs,
                    sample_id=str(rec.get("id", i)),
                    source=str(annotation),
                    split=split,
                    meta={"osprey_kind": record_kind},
                )
            )
    return errors.finish(samples)


def _regions(rec: dict, h: Any, w: Any, check_geometry: bool) -> list[Region]:
    regions = []
    for k, ann in enumerate(expect(rec["annotation"], list, "annotation")):
        expect(ann, dict, f"annotation[{k}]")
        try:
            geometry = coco_geometry(ann, h, w, check_geometry)
            cat = ann.get("category", ann.get("category_name", ann.get("category_id")))
            region = Region(category=None if cat is None else str(cat), **geometry)
            validate_region(region, w, h)
        except DataFormatError as err:
            raise DataFormatError(f"annotation[{k}]: {err}") from err
        regions.append(region)
    return regions


def _refuse_both_forms(turns: list[Turn]) -> None:
    has_mask, has_ref = reference_forms([t.text for t in turns])
    if has_mask and has_ref:
        raise DataFormatError(
            "the conversation references regions both with <mask><pos> tokens and as <regionN>; pass --option "
            f"kind=tokens to read the text as written, or {_RAW_CHOICES} to read it as Osprey-724K's raw text"
        )


def _check_masks(turns: list[Turn], n_regions: int, refs: list[int] | None) -> None:
    """`check_mask_count`, naming the `kind` option when the text has no `<mask>` at all."""
    try:
        check_mask_count(turns, n_regions, refs)
    except DataFormatError as err:
        if n_regions and not any("<mask>" in t.text for t in turns):
            raise DataFormatError(
                f"{err}; if the text names regions some other way, read it with --option {_RAW_CHOICES}"
            ) from err
        raise
