"""LLaVA/GeoChat conversation lists whose boxes are written in the text."""

from __future__ import annotations

from pathlib import Path

from rsvlm_zoo.data.box_codec import BoxCodec
from rsvlm_zoo.data.readers._common import RecordErrors, expect, make_sample, resolve_image
from rsvlm_zoo.data.readers.captions import default_image_dir
from rsvlm_zoo.data.readers.turns import check_image_token, load_list, parse_conversation
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample, Turn


def read_llava(
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    *,
    on_bad_record: str = "error",
    allow_outside_images: bool = False,
    check_tokens: bool = True,
    box_convention: str = "grid100",
    replace_boxes: str | None = None,
    image_size: tuple[int, int] | None = None,
    encoding_errors: str = "strict",
) -> list[Sample]:
    """Read LLaVA/GeoChat conversations `[{id, image, conversations}]`, decoding boxes written in the text.

    Every distinct box found in the text (GeoChat `{<x1><y1><x2><y2>|<θ>}` on a 0-100 grid by default)
    becomes one box region (angle in `attributes["angle"]`). Decoding needs the image size: records with
    boxes read it from the image header at load time (or take `image_size`); others stay lazy.

    Args:
        annotation: The JSON list.
        images: Image directory (default `<annotation dir>/images` or the annotation's dir).
        split: Recorded on the samples.
        on_bad_record: `error` or `skip` (counted in the returned list's `.report`).
        allow_outside_images: Read images named outside `images` (absolute paths, `..`, links out).
        check_tokens: Require exactly one `<image>`.
        box_convention: A `BoxCodec` convention name.
        replace_boxes: When given (e.g. `"<mask><pos>"`), each box in the text is replaced by it and
            `region_refs` records which region each occurrence names.
        image_size: (width, height) of every image (GeoChat's 504x504), skipping header reads.
        encoding_errors: `strict` or `replace` for non-UTF-8 bytes.
    """
    annotation = Path(annotation)
    records = load_list(annotation, encoding_errors, "LLaVA")
    folder = default_image_dir(annotation, images)
    codec = BoxCodec(box_convention)
    errors = RecordErrors(annotation, on_bad_record)
    samples: list[Sample] = []
    for i, rec in enumerate(records):
        with errors.record(f"record {i}" + (f" id={rec.get('id')}" if isinstance(rec, dict) else "")):
            expect(rec, dict, "the record")
            if not rec.get("image"):
                raise DataFormatError("record has no 'image' (text-only); region data needs one")
            turns = parse_conversation(rec["conversations"])
            if check_tokens:
                check_image_token(turns)
            sample = make_sample(
                resolve_image(folder, expect(rec["image"], str, "image"), allow_outside_images),
                *(image_size or (None, None)),
                conversation=turns,
                sample_id=str(rec.get("id", i)),
                source=str(annotation),
                split=split,
            )
            _decode_text_boxes(sample, codec, replace_boxes)
            samples.append(sample)
    return errors.finish(samples)


def _decode_text_boxes(sample: Sample, codec: BoxCodec, replace: str | None) -> None:
    found = [(t, codec.find_all(t.text)) for t in sample.conversation]
    if not any(matches for _, matches in found):
        return
    width, height = sample.width, sample.height  # header read when the size is not given
    keys: dict[tuple, int] = {}
    refs: list[int] = []
    new_turns = []
    for turn, matches in found:
        text, shift = turn.text, 0
        for m in matches:
            box = codec.to_pixels(m, width, height)
            key = (*m.values, m.angle)
            if key not in keys:
                keys[key] = len(sample.regions)
                attrs = {"angle": m.angle} if m.angle is not None else {}
                sample.regions.append(Region(box=box, attributes={**attrs, "text_box": m.text}))
            refs.append(keys[key])
            if replace is not None:
                text = text[: m.start + shift] + replace + text[m.end + shift :]
                shift += len(replace) - (m.end - m.start)
        new_turns.append(Turn(turn.role, text))
    if replace is not None:
        sample.conversation = new_turns
        sample.region_refs = None if refs == list(range(len(sample.regions))) else refs
