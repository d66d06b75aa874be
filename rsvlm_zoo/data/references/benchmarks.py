"""The readers of the published region benchmarks' annotation files, one function per format.

Each takes ``(annotation, images, split, skip_bad)`` and returns `References`; `rsvlm_zoo.data.references`
lists them in `REF_FORMATS` with what each needs.
"""

from pathlib import Path

from rsvlm_zoo.data.box_codec import BoxCodec
from rsvlm_zoo.data.readers.voc import DIOR_SPLITS, read_dior_rsvg
from rsvlm_zoo.data.references.records import (
    GROUNDING,
    SEVERAL_BOXES,
    TEXT,
    Collector,
    ImageSizes,
    References,
    field_of,
    grid_boxes,
    grounding_record,
    image_file,
    iter_records,
    polygon_to_box,
    question_id,
)
from rsvlm_zoo.data.schema import DataFormatError


def read_dior_rsvg_refs(annotation: Path, images: Path | None, split: str | None, skip_bad: bool) -> References:
    """DIOR-RSVG: one grounding reference per `<object>`, sample_id = the running object index of the split files.

    Uses the project's DIOR-RSVG reader (`rsvlm_zoo.data.readers.voc.read_dior_rsvg`); the sizes come from the XML.
    Without a split, every object is written and labelled with the split file that lists it.
    """
    root = annotation.parent if annotation.name == "Annotations" else annotation
    samples = read_dior_rsvg(root, images, split, on_bad_record="skip" if skip_bad else "error")
    labels = {int(s.sample_id): split for s in samples} if split else _dior_split_labels(root)
    col = Collector(GROUNDING, root, skip_bad)
    for sample in samples:
        with col.record(
            f"object index {sample.sample_id} ({sample.meta.get('file')} object {sample.meta.get('object')})"
        ):
            region = sample.regions[0]
            image = Path(str(sample.image)).name
            ref = grounding_record(
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
    sizes = ImageSizes(images, "rsvg-hr")
    col = Collector(GROUNDING, path, skip_bad)
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
            ref = grounding_record(f"{path.stem}:{line_no}", image, sizes(image), box, None, expression, col.out)
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
    sizes = ImageSizes(images, "vrsbench-referring")
    col = Collector(GROUNDING, annotation, skip_bad)
    for name, rec in iter_records(annotation):
        with col.record(name):
            sample_id = question_id(rec)
            image = field_of(rec, "image_id", str)
            truth = field_of(rec, "ground_truth", str, " (the box, {<x1><y1><x2><y2>} on the 0-100 grid)")
            expression = field_of(rec, "question", str, " (the referring expression)")
            boxes = grid_boxes(truth, sizes(image, ".png"), "ground_truth")
            if len(boxes) > 1:
                col.skip(SEVERAL_BOXES, f"{name} question_id {sample_id}: ground_truth holds {len(boxes)} boxes")
                continue
            (box, angle), file_name = boxes[0], image_file(image, ".png")
            ref = grounding_record(sample_id, file_name, sizes(image, ".png"), box, angle, expression.strip(), col.out)
            col.add(ref, None, f"{name} (question_id {sample_id})")
    return col.finish()


def read_vrsbench_caption_refs(annotation: Path, images: Path | None, split: str | None, skip_bad: bool) -> References:
    """VRSBench ``VRSBench_EVAL_Cap.json``: one text reference (the detailed caption) per record."""
    col = Collector(TEXT, annotation, skip_bad)
    codec = BoxCodec("grid100")
    for name, rec in iter_records(annotation):
        with col.record(name):
            sample_id = question_id(rec)
            image = field_of(rec, "image_id", str)
            kind = rec.get("type", "caption")
            if kind != "caption":
                raise DataFormatError(
                    f"has type {kind!r}, not 'caption': this is not VRSBench_EVAL_Cap.json (referring: use the "
                    "vrsbench-referring format; VQA files have no caption references)"
                )
            caption = field_of(rec, "ground_truth", str, " (the caption)").strip()
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
    sizes = ImageSizes(images, "geochat-referring")
    col = Collector(GROUNDING, annotation, skip_bad)
    for name, rec in iter_records(annotation):
        with col.record(name):
            sample_id = question_id(rec)
            image = field_of(rec, "image_id", str)
            expression = field_of(rec, "question", str, " (the referring expression)").strip()
            truth = field_of(rec, "ground_truth", (list, str), " (the object boxes)")
            size = sizes(image, ".png")
            if isinstance(truth, str):
                boxes = grid_boxes(truth, size, "ground_truth")
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
                    f"{image_file(image, '.png')}; the corners are read as pixels of that image: check --images"
                )
            ref = grounding_record(sample_id, image_file(image, ".png"), size, box, angle, expression, col.out)
            col.add(ref, None, f"{name} (question_id {sample_id})")
    return col.finish()


def read_geochat_region_caption_refs(
    annotation: Path, images: Path | None, split: str | None, skip_bad: bool
) -> References:
    """GeoChat-Bench ``region_captioning.jsonl``: the ``ground_truth`` caption of each record as its text reference.

    The region itself (``question``, a grid-100 box) is the model's input, not part of the reference.
    """
    col = Collector(TEXT, annotation, skip_bad)
    for name, rec in iter_records(annotation):
        with col.record(name):
            sample_id = question_id(rec)
            image = field_of(rec, "image_id", str)
            truth = field_of(rec, "ground_truth", (str, list), " (the region's caption)")
            texts = [truth] if isinstance(truth, str) else truth
            if not all(isinstance(t, str) for t in texts):
                raise DataFormatError(
                    "ground_truth holds boxes, not captions: this looks like referring.jsonl; use geochat-referring"
                )
            texts = [t.strip() for t in texts if t.strip()]
            if not texts:
                raise DataFormatError("ground_truth is empty; give the caption or remove the record")
            col.add({"sample_id": sample_id, "image": image_file(image, ".png"), "references": texts}, None, name)
    return col.finish()
