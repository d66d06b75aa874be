"""Pack annotation samples into LitData shards once, resized to the model's input, for `StreamingSource`.

`rsvlm data pack <format> <annotation> --images DIR --out DIR` reads the annotation with its reader
(`on_bad_record="skip"`: bad records are skipped and counted with the readers' own messages) and writes each
sample as one LitData item:

- `image`: the image already at the model's input policy, PNG-encoded (lossless; compression level 1).
  `squash` resizes the whole scene to `input_size` x `input_size` (`resize_sample`); `tile` cuts the scene
  into `input_size` tiles with the rule of `TiledSource` (tile = input, so tiles are not resized), one item per
  tile.
- `record`: JSON text of the rest of the `Sample` at that size: sample id, size, split, source, conversation,
  captions, region refs, meta, and the regions (mask geometry as COCO RLE at the packed size, boxes scaled),
  plus `provenance` (the annotation file, the record's position among the reader's samples, the image file).

Packing runs in parts of `part_size` samples (the unit of resumption), each part's samples spread over
`workers` processes (default: the CPUs) and written in sample order, so the shards and the skip report do not
depend on the number of workers. An interrupted pack continues when the same command is run again (see
`rsvlm_zoo.data.packing.writer`).

Memory: a JSON Lines file (`.jsonl`, formats `osprey` and `llava`: one record per line) is read one part of
lines at a time, so only `part_size` records are held. Every other format is one JSON/XML document (or a
folder of files) that its reader parses whole before the first part is packed; those samples are held in
the packing process (not streamed).

The work is done by the modules of `rsvlm_zoo.data.packing` (one role each); this module is the entry point and
keeps the names other modules import from it.

LitData is optional: `pip install 'rsvlm_zoo[stream]'`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rsvlm_zoo.data.packing.items import decode_record, encode_item, plain
from rsvlm_zoo.data.packing.parts import Entry, is_jsonl, read_parts
from rsvlm_zoo.data.packing.resize import encode_rle, resize_image, resize_region, resize_sample
from rsvlm_zoo.data.packing.settings import (
    INSTALL_HINT,
    JSONL_FORMATS,
    MANIFEST,
    PACK_POLICIES,
    PNG_LEVEL,
    PackSettings,
    Skips,
    default_workers,
    require_litdata,
)
from rsvlm_zoo.data.packing.writer import PackReport, pack_parts


def _check(image_policy: str, input_size: int, workers: int | None, part_size: int) -> int:
    """The number of workers (default: the CPUs), after checking the settings.

    Raises:
        ImportError: LitData missing.
        ValueError: an unknown policy or a size, worker count or part size under 1.
    """
    require_litdata()
    if image_policy not in PACK_POLICIES:
        raise ValueError(f"image_policy must be one of {PACK_POLICIES}, got {image_policy!r}")
    workers = default_workers() if workers is None else workers
    if input_size < 1 or workers < 1 or part_size < 1:
        raise ValueError("input_size, workers and part_size must be positive")
    return workers


def pack(
    format: str,
    annotation: str | Path,
    out: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    input_size: int = 128,
    image_policy: str = "squash",
    workers: int | None = None,
    part_size: int = 20000,
    chunk_bytes: str = "64MB",
    tile_overlap: int = 0,
    tile_min_visible: float = 0.5,
    force: bool = False,
    options: dict[str, Any] | None = None,
) -> PackReport:
    """Pack `annotation` (reader `format`) into LitData shards under `out` (see the module docstring).

    Args:
        format: Reader name (`rsvlm data check --help`).
        annotation: Annotation file or directory; a `.jsonl` file of format `osprey` or `llava` is read a
            part at a time.
        out: Local shard directory (upload it to object storage afterwards, e.g. `aws s3 sync`).
        images: Image directory.
        split: Split to pack.
        input_size: The model's input side in pixels.
        image_policy: `squash` (whole scene resized) or `tile` (tiles of `input_size`).
        workers: Packing processes (default: the CPUs this process may use); the shards are the same for any.
        part_size: Samples per part (the unit of resumption).
        chunk_bytes: Largest shard (chunk) file.
        tile_overlap: Tile overlap in pixels (`tile`).
        tile_min_visible: Fraction of a cut region that keeps it in a tile (`tile`).
        force: Remove a finished pack in `out` and pack again.
        options: Further reader options (`on_bad_record` defaults to `skip`).

    Returns:
        What was written and skipped (also saved in `<out>/pack.json`).

    Raises:
        ImportError: LitData missing.
        ValueError: bad settings, or `out` holds a finished pack (without `force`) or an interrupted pack of
            other settings.
        DataFormatError: file-level problems of the annotation (see the reader).
    """
    started = time.perf_counter()
    workers = _check(image_policy, input_size, workers, part_size)
    annotation, out = Path(annotation), Path(out)
    options = {"on_bad_record": "skip", **(options or {})}
    plan = {
        "format": format,
        "annotation": str(annotation.resolve()),
        "images": None if images is None else str(Path(images).resolve()),
        "split": split,
        "input_size": input_size,
        "image_policy": image_policy,
        "tile_overlap": tile_overlap,
        "tile_min_visible": tile_min_visible,
        "part_size": part_size,
        "workers": workers,
        "options": plain(options),
    }
    is_jsonl(annotation, format)  # refuses a .jsonl file of another format before anything is written
    reader_skips = Skips()
    images_arg = None if images is None else str(images)
    parts = read_parts(format, annotation, images_arg, split, part_size, options, reader_skips)
    settings = PackSettings(input_size, image_policy, tile_overlap, tile_min_visible)
    return pack_parts(parts, out, plan, settings, workers, chunk_bytes, force, reader_skips, started)


def pack_source(
    source: Any,
    out: str | Path,
    input_size: int = 128,
    image_policy: str = "squash",
    workers: int | None = None,
    part_size: int = 20000,
    chunk_bytes: str = "64MB",
    force: bool = False,
) -> PackReport:
    """Pack the samples of any `SampleSource` (e.g. generated scenes) like `pack` packs a reader's samples.

    Raises:
        ImportError: LitData missing.
        ValueError: as `pack`.
    """
    started = time.perf_counter()
    workers = _check(image_policy, input_size, workers, part_size)
    plan = {
        "source": type(source).__name__,
        "samples": len(source),
        "input_size": input_size,
        "image_policy": image_policy,
        "tile_overlap": 0,
        "tile_min_visible": 0.5,
        "part_size": part_size,
        "workers": workers,
    }

    def parts() -> Iterator[list[Entry]]:
        for start in range(0, len(source), part_size):
            yield [(i, source[i]) for i in range(start, min(len(source), start + part_size))]

    settings = PackSettings(input_size, image_policy)
    return pack_parts(parts(), Path(out), plan, settings, workers, chunk_bytes, force, Skips(), started)


__all__ = [
    "INSTALL_HINT",
    "JSONL_FORMATS",
    "MANIFEST",
    "PACK_POLICIES",
    "PNG_LEVEL",
    "PackReport",
    "PackSettings",
    "decode_record",
    "encode_item",
    "encode_rle",
    "pack",
    "pack_source",
    "require_litdata",
    "resize_image",
    "resize_region",
    "resize_sample",
]
