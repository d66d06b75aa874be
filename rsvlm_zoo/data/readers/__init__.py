"""Annotation-format readers: each turns one public file format into `Sample`s.

Every reader is `read_<name>(annotation, images=None, split=None, **options) -> list[Sample]`.
Common options: `on_bad_record="error"` (default: any bad record raises `DataFormatError` naming file,
record and fix) or `"skip"` (bad records are dropped, counted and logged once as a warning). The list a
reader returns is a `SampleList` whose `.report` (`ReadReport`) holds `skipped` and the `reasons`.
Readers never decode images or rasterise masks; sizes missing from an annotation are read from the image
header on first use (`LazySizeSample`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rsvlm_zoo.data.readers._common import LazySizeSample, ReadReport, SampleList
from rsvlm_zoo.data.readers.boxes import read_csv_boxes, read_dota
from rsvlm_zoo.data.readers.captions import read_karpathy, read_nwpu
from rsvlm_zoo.data.readers.coco import read_coco
from rsvlm_zoo.data.readers.llava import read_llava
from rsvlm_zoo.data.readers.mgimm import read_mgimm_description, read_mgimm_region
from rsvlm_zoo.data.readers.osprey import read_osprey
from rsvlm_zoo.data.readers.voc import read_dior_rsvg, read_voc
from rsvlm_zoo.data.schema import Sample

READERS: dict[str, Callable[..., list[Sample]]] = {
    "karpathy": read_karpathy,
    "nwpu": read_nwpu,
    "coco": read_coco,
    "dota": read_dota,
    "voc": read_voc,
    "csv": read_csv_boxes,
    "osprey": read_osprey,
    "mgimm-region": read_mgimm_region,
    "mgimm-description": read_mgimm_description,
    "dior-rsvg": read_dior_rsvg,
    "llava": read_llava,
}

# Options the checker passes to every reader; a reader without one of them simply does not get it.
COMMON_OPTIONS = ("on_bad_record", "check_geometry", "check_tokens", "encoding_errors", "allow_outside_images")


def reader_options(format: str) -> list[str]:
    """The keyword options reader `format` accepts."""
    params = inspect.signature(READERS[format]).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def read_annotations(
    format: str,
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    **options: Any,
) -> list[Sample]:
    """Read `annotation` with the reader registered as `format`.

    Options in `COMMON_OPTIONS` that the reader does not take are dropped; any other unknown option
    is an error.

    Raises:
        ValueError: unknown format name or option.
        DataFormatError: bad input (see the reader).
    """
    if format not in READERS:
        raise ValueError(f"unknown annotation format {format!r}; known formats: {', '.join(READERS)}")
    accepted = reader_options(format)
    unknown = [k for k in options if k not in accepted and k not in COMMON_OPTIONS]
    if unknown:
        raise ValueError(f"reader {format!r} has no option(s) {unknown}; its options: {', '.join(accepted)}")
    kwargs = {k: v for k, v in options.items() if k in accepted}
    return READERS[format](annotation, images, split, **kwargs)


__all__ = ["READERS", "LazySizeSample", "ReadReport", "SampleList", "read_annotations", "reader_options"]
