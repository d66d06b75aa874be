"""Reference files for the published region benchmarks, as `rsvlm eval --references` reads them.

`read_references(format, annotation, images, split)` turns one benchmark's published annotation files into a
list of reference records; `write_references` writes them as a JSON list. Two record kinds exist:

- grounding (`rsvlm eval --task grounding`): ``{"sample_id", "image", "width", "height", "box": [x1, y1, x2, y2],
  "angle"?, "expression"?}``, the box in pixels of the image; `angle` (degrees) only for a rotated box: the box is
  turned by `angle` about its centre, positive turning the x axis toward the y axis of the image (clockwise on
  screen), as GeoChat writes ``{<x1><y1><x2><y2>|<θ>}``.
- text (`--task regioncap` / `description`): ``{"sample_id", "image", "references": [str, ...]}``.

Formats (`REF_FORMATS`), their input and the `sample_id` each gives, which predictions must carry to be matched:

- ``dior-rsvg`` (grounding): the DIOR-RSVG root (``Annotations/*.xml``, ``train.txt``/``val.txt``/``test.txt`` of
  object indices). sample_id: the running object index over all XMLs in sorted file order, the number the split
  files use (``"1234"``).
- ``rsvg-hr`` (grounding): an RSVG-HR split file ``rsvg_hr_<split>.txt`` (lines ``image,x1,y1,x2,y2,expression``,
  pixels), or the folder holding them with ``--split``. sample_id: ``<file stem>:<line>``, the line counted from 1
  (``"rsvg_hr_test:12"``).
- ``vrsbench-referring`` (grounding): ``VRSBench_EVAL_referring.json``, ``ground_truth`` ``{<x1><y1><x2><y2>}`` on
  the 0-100 grid. sample_id: the record's ``question_id``.
- ``vrsbench-caption`` (text, ``--task description``): ``VRSBench_EVAL_Cap.json``. sample_id: ``question_id``.
- ``geochat-referring`` (grounding): GeoChat-Bench ``referring.jsonl``, ``ground_truth`` a list of 4-corner pixel
  polygons, one per object (or text with grid-100 boxes). sample_id: ``question_id``.
- ``geochat-region-caption`` (text, ``--task regioncap``): GeoChat-Bench ``region_captioning.jsonl``. sample_id:
  ``question_id``.

Sizes: DIOR-RSVG's XML holds each image's size; the other grounding formats do not, so their readers need the image
folder and read each image's size from its header (PIL, pixels never decoded). Boxes on GeoChat's 0-100 grid are
parsed with `BoxCodec("grid100")` and scaled by that size. A GeoChat record that refers to several objects (its
`ground_truth` holds several boxes) has no single-box reference; it is skipped and counted. Zero-area boxes (VRSBench
publishes a few, two grid corners equal after rounding) are kept as published and counted.

Every bad input raises `DataFormatError` naming the file, the record and the fix; with ``skip_bad=True`` a bad record
is skipped and counted instead.
"""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsvlm_zoo.data.references.benchmarks import (
    read_dior_rsvg_refs,
    read_geochat_referring_refs,
    read_geochat_region_caption_refs,
    read_rsvg_hr_refs,
    read_vrsbench_caption_refs,
    read_vrsbench_referring_refs,
)
from rsvlm_zoo.data.references.records import GROUNDING, TEXT, References, polygon_to_box


@dataclass(frozen=True)
class RefFormat:
    """One benchmark format `rsvlm data refs` reads.

    Attributes:
        reader: ``(annotation, images, split, skip_bad) -> References``.
        kind: `grounding` or `text`.
        eval_tasks: The `rsvlm eval --task` values the references are for.
        needs_images: Whether the image folder is required (sizes come from the image headers).
        has_splits: Whether `--split` means anything for this format.
        help: One line for the command's help.
    """

    reader: Callable[[Path, Path | None, str | None, bool], References]
    kind: str
    eval_tasks: tuple[str, ...]
    needs_images: bool
    has_splits: bool
    help: str


REF_FORMATS: dict[str, RefFormat] = {
    "dior-rsvg": RefFormat(
        read_dior_rsvg_refs, GROUNDING, ("grounding",), False, True, "DIOR-RSVG root; sample_id = object index"
    ),
    "rsvg-hr": RefFormat(
        read_rsvg_hr_refs, GROUNDING, ("grounding",), True, True, "RSVG-HR rsvg_hr_<split>.txt; id <stem>:<line>"
    ),
    "vrsbench-referring": RefFormat(
        read_vrsbench_referring_refs, GROUNDING, ("grounding",), True, False, "VRSBench_EVAL_referring.json"
    ),
    "vrsbench-caption": RefFormat(
        read_vrsbench_caption_refs, TEXT, ("description",), False, False, "VRSBench_EVAL_Cap.json"
    ),
    "geochat-referring": RefFormat(
        read_geochat_referring_refs, GROUNDING, ("grounding",), True, False, "GeoChat-Bench referring.jsonl"
    ),
    "geochat-region-caption": RefFormat(
        read_geochat_region_caption_refs, TEXT, ("regioncap",), False, False, "GeoChat-Bench region_captioning.jsonl"
    ),
}


def check_arguments(format: str, images: str | Path | None, split: str | None) -> None:
    """Raise `ValueError` for arguments a format cannot use (an unknown format, a split, a missing image folder)."""
    if format not in REF_FORMATS:
        raise ValueError(f"unknown references format {format!r}; known: {', '.join(REF_FORMATS)}")
    spec = REF_FORMATS[format]
    if split is not None and not spec.has_splits:
        raise ValueError(f"format {format} has no splits (the file is the benchmark's evaluation set); drop --split")
    if images is None and spec.needs_images:
        raise ValueError(
            f"format {format} needs --images DIR: the file does not hold image sizes, which are read from the image "
            "headers to put the boxes in pixels"
        )


def read_references(
    format: str,
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    *,
    skip_bad: bool = False,
) -> References:
    """Read one benchmark's annotation files as reference records.

    Args:
        format: A name of `REF_FORMATS`.
        annotation: The annotation file (or the dataset root / split-file folder where the format says so).
        images: The image folder (required by formats whose files hold no image sizes).
        split: The split to read, for formats that have splits.
        skip_bad: Skip and count bad records instead of raising on the first.

    Raises:
        ValueError: arguments the format cannot use (see `check_arguments`).
        DataFormatError: bad input, naming the file, the record and the fix.
    """
    check_arguments(format, images, split)
    spec = REF_FORMATS[format]
    return spec.reader(Path(annotation), Path(images) if images is not None else None, split, skip_bad)


def write_references(records: list[dict[str, Any]], out: str | Path, force: bool = False) -> Path:
    """Write `records` as a JSON list (one record a line) to `out`; an existing file is kept unless `force`.

    The file is written beside `out` and moved into place, so an interrupted run leaves no partial file.

    Raises:
        FileExistsError: `out` exists and `force` is false.
        OSError: the file cannot be written.
    """
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to overwrite it, or choose another --out")
    if not out.parent.is_dir():
        raise OSError(f"{out.parent}: no such folder for the references file; create it or choose another --out")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    body = ",\n".join(json.dumps(rec, ensure_ascii=False) for rec in records)
    try:
        tmp.write_text(f"[\n{body}\n]\n" if records else "[]\n", encoding="utf-8")
        if out.exists() and not force:
            raise FileExistsError(
                f"{out} appeared while writing; pass --force to overwrite it, or choose another --out"
            )
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


__all__ = [
    "GROUNDING",
    "REF_FORMATS",
    "TEXT",
    "RefFormat",
    "References",
    "check_arguments",
    "polygon_to_box",
    "read_references",
    "write_references",
]
