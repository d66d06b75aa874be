"""Pack annotation samples into LitData shards once, resized to the model's input, for `StreamingSource`.

`rsvlm data pack <format> <annotation> --images DIR --out DIR` reads the annotation with its reader
(`on_bad_record="skip"`: bad records are skipped and counted with the readers' own messages) and writes each
sample as one LitData item with `litdata.optimize`:

- `image`: the image already at the model's input policy, PNG-encoded (lossless; compression level 1).
  `squash` resizes the whole scene to `input_size` x `input_size` (`resize_sample`); `tile` cuts the scene
  into `input_size` tiles with `TiledSource` (tile = input, so tiles are not resized), one item per tile.
- `record`: JSON text of the rest of the `Sample` at that size: sample id, size, split, source, conversation,
  captions, region refs, meta, and the regions (mask geometry as COCO RLE at the packed size, boxes scaled),
  plus `provenance` (the annotation file, the record's position among the reader's samples, the image file).

Packing runs in parts of `part_size` samples; each part is one `litdata.optimize` call with `workers`
processes, written to `<out>/.parts/part-NNNNN/` and marked done (`done.json`, with what it skipped) when
its index is written. An interrupted pack continues when the same command is run again: done parts are
kept, an unfinished part is removed and packed again, and the settings must be the same (`plan.json`). When
every part is done, their chunk files are moved into `<out>` and one `index.json` plus `pack.json` (settings,
counts, skip reasons) are written.

Memory: a JSON Lines file (`.jsonl`, formats `osprey` and `llava`: one record per line) is read one part of
lines at a time, so only `part_size` records are held. Every other format is one JSON/XML document (or a
folder of files) that its reader parses whole before the first part is packed; those samples are held in
the packing process (not streamed).

LitData is optional: `pip install 'rsvlm_zoo[stream]'`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsvlm_zoo.data.images import ImageWindow, decode, load_image
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample, Turn
from rsvlm_zoo.data.tiling import MaskPatch, TileDropped, mask_patch

log = logging.getLogger(__name__)

PACK_POLICIES = ("squash", "tile")
JSONL_FORMATS = ("osprey", "llava")
MANIFEST = "pack.json"
PNG_LEVEL = 1
INSTALL_HINT = "LitData is not installed; install it with pip install 'rsvlm_zoo[stream]' (or pip install litdata)"


def require_litdata() -> Any:
    """The `litdata` module.

    Raises:
        ImportError: when LitData is not installed, naming the extra that installs it.
    """
    try:
        import litdata
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return litdata


# ---------------------------------------------------------------- resizing one sample


def _bins(length: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) input pixel of every output pixel under area resizing (adaptive average pooling)."""
    i = np.arange(out, dtype=np.int64)
    return (i * length) // out, -((-(i + 1) * length) // out)


def _resize_patch(patch: MaskPatch, height: int, width: int, out_h: int, out_w: int) -> np.ndarray:
    """The region's mask at (out_h, out_w): area coverage of each output pixel, kept where it is at least 0.5.

    Only the output pixels whose input bins meet the patch are computed (integral image of the patch). A
    region whose coverage stays under 0.5 everywhere keeps its pixels of highest coverage, so no object vanishes.
    """
    out = np.zeros((out_h, out_w), dtype=bool)
    ph, pw = patch.mask.shape
    if ph == 0 or pw == 0:
        return out
    integral = np.zeros((ph + 1, pw + 1), dtype=np.int64)
    integral[1:, 1:] = patch.mask.astype(np.int64).cumsum(0).cumsum(1)
    rs, re_ = _bins(height, out_h)
    cs, ce = _bins(width, out_w)
    rows = np.nonzero((re_ > patch.y0) & (rs < patch.y0 + ph))[0]
    cols = np.nonzero((ce > patch.x0) & (cs < patch.x0 + pw))[0]
    r0 = np.clip(rs[rows] - patch.y0, 0, ph)[:, None]
    r1 = np.clip(re_[rows] - patch.y0, 0, ph)[:, None]
    c0 = np.clip(cs[cols] - patch.x0, 0, pw)[None, :]
    c1 = np.clip(ce[cols] - patch.x0, 0, pw)[None, :]
    inside = integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]
    area = (re_[rows] - rs[rows])[:, None] * (ce[cols] - cs[cols])[None, :]
    coverage = inside / area
    keep = coverage >= 0.5
    if not keep.any() and coverage.max() > 0:
        keep = coverage == coverage.max()
    out[np.ix_(rows, cols)] = keep
    return out


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of a boolean mask (`counts` as COCO's compressed string)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def resize_region(region: Region, height: int, width: int, out_h: int, out_w: int) -> Region:
    """`region` at (out_h, out_w): mask geometry (mask, polygons, RLE) as an RLE, the box scaled.

    The mask is the area coverage of the scene mask per output pixel, kept where it is at least one half (at
    least one pixel stays); the box is scaled by (out_w / width, out_h / height). Category, text and
    attributes are kept.

    Raises:
        DataFormatError: invalid geometry (see `mask_patch`).
    """
    rle = None
    if region.has_mask_geometry:
        rle = encode_rle(_resize_patch(mask_patch(region, height, width), height, width, out_h, out_w))
    box = None
    if region.box is not None:
        sx, sy = out_w / width, out_h / height
        x1, y1, x2, y2 = region.box
        box = (float(x1) * sx, float(y1) * sy, float(x2) * sx, float(y2) * sy)
    return Region(rle=rle, box=box, category=region.category, text=region.text, attributes=dict(region.attributes))


def resize_image(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """HxWx3 uint8 image at (out_h, out_w): PIL bilinear with antialiasing (unchanged when already that size)."""
    from PIL import Image

    if image.shape[:2] == (out_h, out_w):
        return image
    return np.asarray(Image.fromarray(image).resize((out_w, out_h), Image.BILINEAR))


def resize_sample(sample: Sample, image: np.ndarray, out_h: int, out_w: int) -> Sample:
    """`sample` with its decoded `image` and its regions resized to (out_h, out_w): what a packed shard holds.

    Raises:
        DataFormatError: invalid region geometry, naming the record and region.
    """
    height, width = image.shape[:2]
    regions = []
    for k, region in enumerate(sample.regions):
        try:
            regions.append(resize_region(region, height, width, out_h, out_w))
        except DataFormatError as err:
            raise DataFormatError(f"{sample.where()}: region {k}: {err}") from err
    return Sample(
        image=resize_image(image, out_h, out_w),
        width=out_w,
        height=out_h,
        regions=regions,
        conversation=[Turn(t.role, t.text) for t in sample.conversation],
        captions=list(sample.captions),
        region_refs=None if sample.region_refs is None else list(sample.region_refs),
        sample_id=sample.sample_id,
        source=sample.source,
        split=sample.split,
        meta=dict(sample.meta),
    )


# ---------------------------------------------------------------- item encoding


def _plain(value: Any) -> Any:
    """JSON-ready copy: tuples become lists, numpy scalars and arrays become numbers and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def encode_item(sample: Sample, provenance: dict[str, Any]) -> dict[str, Any]:
    """The LitData item of a resized sample (image array): PNG bytes and the JSON record."""
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.fromarray(np.asarray(sample.image)).save(buffer, format="PNG", compress_level=PNG_LEVEL)
    record = {
        "sample_id": sample.sample_id,
        "width": sample.width,
        "height": sample.height,
        "split": sample.split,
        "source": str(sample.source),
        "conversation": [[t.role, t.text] for t in sample.conversation],
        "captions": list(sample.captions),
        "region_refs": sample.region_refs,
        "meta": _plain(sample.meta),
        "regions": [
            {
                "rle": r.rle,
                "box": None if r.box is None else list(r.box),
                "category": r.category,
                "text": r.text,
                "attributes": _plain(r.attributes),
            }
            for r in sample.regions
        ],
        "provenance": _plain(provenance),
    }
    return {"image": buffer.getvalue(), "record": json.dumps(record, ensure_ascii=False)}


TUPLE_META = ("window", "scene_size", "size")


def decode_record(text: str) -> tuple[dict[str, Any], Sample]:
    """(provenance, Sample without image) of a packed item's JSON record; `image` is filled by the caller."""
    rec = json.loads(text)
    meta = rec["meta"]
    tile = meta.get("tile")
    if isinstance(tile, dict):  # the tiling rule records these as tuples
        meta["tile"] = {k: tuple(v) if k in TUPLE_META and isinstance(v, list) else v for k, v in tile.items()}
    regions = [
        Region(
            rle=r["rle"],
            box=None if r["box"] is None else tuple(r["box"]),
            category=r["category"],
            text=r["text"],
            attributes=r["attributes"],
        )
        for r in rec["regions"]
    ]
    sample = Sample(
        image=np.zeros((0, 0, 3), np.uint8),
        width=rec["width"],
        height=rec["height"],
        regions=regions,
        conversation=[Turn(role, text) for role, text in rec["conversation"]],
        captions=rec["captions"],
        region_refs=rec["region_refs"],
        sample_id=rec["sample_id"],
        source=rec["source"],
        split=rec["split"],
        meta=meta,
    )
    return rec["provenance"], sample


# ---------------------------------------------------------------- the per-sample packing function


@dataclass(frozen=True)
class PackSettings:
    """How samples are packed.

    Attributes:
        input_size: Side of the model input in pixels.
        image_policy: `squash` or `tile`.
        tile_overlap: Pixels shared by neighbouring tiles (`tile`).
        tile_min_visible: Fraction of a cut region that keeps it in a tile (`tile`).
        skips_dir: Folder where workers record skipped samples and dropped tiles (one JSON Lines file per process).
    """

    input_size: int
    image_policy: str
    tile_overlap: int = 0
    tile_min_visible: float = 0.5
    skips_dir: str = ""


_SCENE_CACHE: dict[str, Any] = {}


def _scene(image: Any) -> np.ndarray:
    """A decoded scene; the last file decoded in this process is kept, so the tiles of one scene decode it once."""
    if isinstance(image, ImageWindow):
        if isinstance(image.image, np.ndarray):
            return image.load()
        key = str(image.image)
        if _SCENE_CACHE.get("key") != key:
            _SCENE_CACHE.clear()
            _SCENE_CACHE.update(key=key, scene=load_image(image.image))
        scene = _SCENE_CACHE["scene"]
        x0, y0, x1, y1 = image.window
        h, w = scene.shape[:2]
        if x1 > w or y1 > h:
            raise DataFormatError(f"{image}: the scene is {w}x{h}, smaller than the tile window")
        return np.ascontiguousarray(scene[y0:y1, x0:x1])
    return decode(image)


def _record_skip(settings: PackSettings, kind: str, message: str) -> None:
    if not settings.skips_dir:
        return
    path = Path(settings.skips_dir) / f"skips-{os.getpid()}.jsonl"
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"kind": kind, "message": message}) + "\n")


def _image_name(image: Any) -> str:
    if isinstance(image, ImageWindow):
        image = image.image
    return "<array>" if isinstance(image, np.ndarray) else str(image)


def pack_entry(entry: tuple[int, Sample], settings: PackSettings) -> Iterator[dict[str, Any]]:
    """The LitData items of one reader sample (one under `squash`, one per kept tile under `tile`).

    A sample whose image or geometry cannot be read is skipped and recorded (kind `unreadable images`,
    `missing images` or `invalid geometry`); a tile the tiling rule drops is recorded as `dropped tiles`.
    """
    from rsvlm_zoo.data.images import ImageReadError
    from rsvlm_zoo.data.sources.tiled import TiledSource

    position, scene = entry
    size = settings.input_size
    try:
        if settings.image_policy == "tile":
            tiles = TiledSource(_One(scene), size, settings.tile_overlap, settings.tile_min_visible)
            parts = []
            for k in range(len(tiles)):
                try:
                    parts.append(tiles[k])
                except TileDropped as err:
                    _record_skip(settings, "dropped tiles", str(err))
        else:
            parts = [scene]
        items = []
        for sample in parts:
            image = _scene(sample.image)
            h, w = image.shape[:2]
            if (h, w) != (sample.height, sample.width):
                raise DataFormatError(
                    f"{sample.where()}: image is {w}x{h} but the annotation says {sample.width}x{sample.height}"
                )
            out_h, out_w = (size, size) if settings.image_policy == "squash" else (h, w)
            resized = resize_sample(sample, image, out_h, out_w)
            provenance = {"source": str(scene.source), "record": position, "image": _image_name(scene.image)}
            items.append(encode_item(resized, provenance))
    except ImageReadError as err:
        missing = not Path(_image_name(scene.image)).is_file()
        _record_skip(settings, "missing images" if missing else "unreadable images", str(err))
        return
    except (DataFormatError, ValueError, OSError) as err:
        _record_skip(settings, "invalid geometry", f"{scene.where()}: {err}")
        return
    yield from items


class _One:
    """A one-sample source (the scene being tiled)."""

    def __init__(self, sample: Sample) -> None:
        self.sample = sample

    def __len__(self) -> int:
        return 1

    def __getitem__(self, idx: int) -> Sample:
        return self.sample

    def control(self) -> None:
        return None


# ---------------------------------------------------------------- reading in parts


def _jsonl_parts(
    format: str,
    annotation: Path,
    images: str | None,
    split: str | None,
    part_size: int,
    options: dict[str, Any],
    skip: Counter,
    reasons: list[str],
) -> Iterator[list[tuple[int, Sample]]]:
    """Samples of a JSON Lines file, `part_size` records at a time, read by the format's own reader.

    Each part's records are written as a JSON list to a temporary file and read by the reader (with the
    record's running position as its `id` when the record has none, as reading the whole list would give).
    Skip messages name the annotation file and the line.
    """
    from rsvlm_zoo.data.readers import read_annotations
    from rsvlm_zoo.data.readers.captions import default_image_dir

    folder = str(default_image_dir(annotation, images))
    position = emitted = 0
    errors = options.get("encoding_errors", "strict")
    with (
        open(annotation, encoding="utf-8", errors=errors) as f,
        tempfile.TemporaryDirectory(prefix="rsvlm-pack-") as tmp,
    ):
        batch_file = Path(tmp) / "records.json"
        lines = iter(enumerate(f, start=1))
        while True:
            records, line_of = [], []
            for number, line in lines:
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as err:
                    message = f"{annotation}: line {number}: invalid JSON ({err.msg}); fix or remove the line"
                    if options.get("on_bad_record", "skip") == "error":
                        raise DataFormatError(message) from err
                    skip["bad records (skipped)"] += 1
                    reasons.append(message)
                    continue
                if isinstance(rec, dict):
                    rec.setdefault("id", position)
                records.append(rec)
                line_of.append(number)
                position += 1
                if len(records) == part_size:
                    break
            if not records:
                return
            batch_file.write_text(json.dumps(records), encoding="utf-8")
            samples = read_annotations(format, batch_file, folder, split, **options)
            report = getattr(samples, "report", None)
            if report is not None:
                skip["bad records (skipped)"] += report.skipped

                for reason in report.reasons:
                    reasons.append(_name_lines(reason, str(batch_file), str(annotation), line_of))
            for sample in samples:
                sample.source = str(annotation)
            yield list(enumerate(samples, start=emitted))
            emitted += len(samples)


def _name_lines(reason: str, batch_file: str, annotation: str, line_of: list[int]) -> str:
    """A reader's skip message about a part's temporary file, naming the annotation file and the line instead."""

    def line(m: re.Match) -> str:
        k = int(m.group(1))
        return f"line {line_of[k]}" if k < len(line_of) else m.group(0)

    return re.sub(r"record (\d+)", line, reason.replace(batch_file, annotation))


def _document_parts(
    format: str,
    annotation: Path,
    images: str | None,
    split: str | None,
    part_size: int,
    options: dict[str, Any],
    skip: Counter,
    reasons: list[str],
) -> Iterator[list[tuple[int, Sample]]]:
    """Samples of a whole-document format, read at once by its reader, in parts of `part_size`."""
    from rsvlm_zoo.data.readers import read_annotations

    samples = read_annotations(format, annotation, images, split, **options)
    report = getattr(samples, "report", None)
    if report is not None:
        skip["bad records (skipped)"] += report.skipped
        reasons.extend(report.reasons)
    for start in range(0, len(samples), part_size):
        yield list(enumerate(samples[start : start + part_size], start=start))


# ---------------------------------------------------------------- pack


@dataclass
class PackReport:
    """What a pack wrote and skipped.

    Attributes:
        out: The shard directory.
        samples: Items written (samples, or tiles under `tile`).
        scenes: Reader samples packed (scenes).
        parts: Parts packed by this call / kept from an interrupted call.
        skipped: Count per kind (`bad records (skipped)` from the reader, `missing images`, `unreadable images`,
            `invalid geometry` and `dropped tiles` from packing).
        reasons: Up to a few messages per kind.
        seconds: Wall time of this call.
    """

    out: str
    samples: int = 0
    scenes: int = 0
    parts: tuple[int, int] = (0, 0)
    skipped: Counter = field(default_factory=Counter)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: items written, parts, and skips per kind."""
        skipped = ", ".join(f"{n} {kind}" for kind, n in sorted(self.skipped.items()) if n) or "nothing"
        return (
            f"packed {self.samples} sample(s) from {self.scenes} scene(s) into {self.out} "
            f"({self.parts[0]} part(s) packed, {self.parts[1]} kept from an earlier run) in {self.seconds:.1f} s; "
            f"skipped: {skipped}"
        )


MAX_REASONS = 20


def _collect_skips(folder: Path) -> tuple[Counter, dict[str, list[str]]]:
    counts: Counter = Counter()
    reasons: dict[str, list[str]] = {}
    for path in sorted(folder.glob("skips-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            counts[rec["kind"]] += 1
            found = reasons.setdefault(rec["kind"], [])
            if len(found) < MAX_REASONS:
                found.append(rec["message"])
    return counts, reasons


def _part_items(part_dir: Path) -> int:
    index = part_dir / "index.json"
    if not index.is_file():
        return 0
    return sum(c["chunk_size"] for c in json.loads(index.read_text())["chunks"])


def pack(
    format: str,
    annotation: str | Path,
    out: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    input_size: int = 128,
    image_policy: str = "squash",
    workers: int = 1,
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
        workers: Packing processes per part (`litdata.optimize` workers).
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
    require_litdata()
    if image_policy not in PACK_POLICIES:
        raise ValueError(f"image_policy must be one of {PACK_POLICIES}, got {image_policy!r}")
    if input_size < 1 or workers < 1 or part_size < 1:
        raise ValueError("input_size, workers and part_size must be positive")
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
        "options": _plain(options),
    }
    jsonl = annotation.suffix.lower() == ".jsonl" and annotation.is_file()
    if jsonl and format not in JSONL_FORMATS:
        raise ValueError(f"JSON Lines input is read for formats {JSONL_FORMATS}, not {format!r}")
    reader_skips: Counter = Counter()
    reader_reasons: list[str] = []
    read = _jsonl_parts if jsonl else _document_parts
    images_arg = None if images is None else str(images)
    parts = read(format, annotation, images_arg, split, part_size, options, reader_skips, reader_reasons)
    settings = PackSettings(input_size, image_policy, tile_overlap, tile_min_visible)
    return _pack_parts(parts, out, plan, settings, workers, chunk_bytes, force, reader_skips, reader_reasons, started)


def pack_source(
    source: Any,
    out: str | Path,
    input_size: int = 128,
    image_policy: str = "squash",
    workers: int = 1,
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
    require_litdata()
    if image_policy not in PACK_POLICIES:
        raise ValueError(f"image_policy must be one of {PACK_POLICIES}, got {image_policy!r}")
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

    def parts() -> Iterator[list[tuple[int, Sample]]]:
        for start in range(0, len(source), part_size):
            yield [(i, source[i]) for i in range(start, min(len(source), start + part_size))]

    settings = PackSettings(input_size, image_policy)
    return _pack_parts(parts(), Path(out), plan, settings, workers, chunk_bytes, force, Counter(), [], started)


def _pack_parts(
    parts: Iterator[list[tuple[int, Sample]]],
    out: Path,
    plan: dict[str, Any],
    base: PackSettings,
    workers: int,
    chunk_bytes: str,
    force: bool,
    reader_skips: Counter,
    reader_reasons: list[str],
    started: float,
) -> PackReport:
    """Pack each part not yet done with `litdata.optimize`, then merge the parts (see the module docstring)."""
    import dataclasses
    import multiprocessing

    import litdata

    start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    if (out / MANIFEST).is_file():
        if not force:
            raise ValueError(f"{out} already holds a finished pack; pass force=True (--force) or choose another out")
        shutil.rmtree(out)
    parts_root = out / ".parts"
    plan_file = parts_root / "plan.json"
    if plan_file.is_file():
        earlier = json.loads(plan_file.read_text())
        if force:
            shutil.rmtree(parts_root)
        elif earlier != plan:
            changed = sorted(k for k in plan if earlier.get(k) != plan[k])
            raise ValueError(
                f"{out} holds an interrupted pack with other settings ({', '.join(changed)}); run it with the same "
                "settings to continue it, or pass force=True (--force) to start again"
            )
    parts_root.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(json.dumps(plan, indent=1))

    packed = kept = scenes = 0
    for k, entries in enumerate(parts):
        part_dir = parts_root / f"part-{k:05d}"
        done = part_dir / "done.json"
        scenes += len(entries)
        if done.is_file():
            kept += 1
            continue
        if part_dir.exists():
            shutil.rmtree(part_dir)
        skips_dir = parts_root / f"part-{k:05d}.skips"
        if skips_dir.exists():
            shutil.rmtree(skips_dir)
        skips_dir.mkdir(parents=True)
        settings = dataclasses.replace(base, skips_dir=str(skips_dir))
        if entries:
            litdata.optimize(
                fn=functools.partial(pack_entry, settings=settings),
                inputs=entries,
                output_dir=str(part_dir),
                num_workers=min(workers, len(entries)),
                chunk_bytes=chunk_bytes,
                mode="overwrite",
                verbose=False,
                start_method=start_method,
            )
        part_dir.mkdir(parents=True, exist_ok=True)
        counts, reasons = _collect_skips(skips_dir)
        done.write_text(
            json.dumps({"items": _part_items(part_dir), "scenes": len(entries), "skipped": counts, "reasons": reasons})
        )
        shutil.rmtree(skips_dir)
        packed += 1
        log.info("part %d: %d samples", k, len(entries))
    report = _finish(out, plan, reader_skips, reader_reasons)
    report.parts, report.seconds, report.scenes = (packed, kept), time.perf_counter() - started, scenes
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["scenes"] = scenes
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(parts_root)
    return report


def _finish(out: Path, plan: dict[str, Any], reader_skips: Counter, reader_reasons: list[str]) -> PackReport:
    """Move every part's chunks into `out`, write the merged LitData `index.json` and `pack.json`."""
    parts = sorted(p for p in (out / ".parts").glob("part-*") if p.is_dir() and not p.name.endswith(".skips"))
    chunks: list[dict[str, Any]] = []
    config: dict[str, Any] | None = None
    report = PackReport(str(out), skipped=Counter(reader_skips))
    report.reasons["bad records (skipped)"] = reader_reasons[:MAX_REASONS]
    for part in parts:
        done = json.loads((part / "done.json").read_text())
        report.skipped.update(done["skipped"])
        for kind, found in done["reasons"].items():
            have = report.reasons.setdefault(kind, [])
            have.extend(found[: MAX_REASONS - len(have)])
        index = part / "index.json"
        if not index.is_file():
            continue
        part_index = json.loads(index.read_text())
        config = config or part_index["config"]
        for chunk in part_index["chunks"]:
            name = f"{part.name}-{chunk['filename']}"
            if (part / chunk["filename"]).is_file():
                os.replace(part / chunk["filename"], out / name)
            chunks.append({**chunk, "filename": name})
    report.samples = sum(c["chunk_size"] for c in chunks)
    if config is None:
        raise ValueError(f"{out}: nothing was packed (every sample was skipped: {dict(report.skipped)})")
    (out / "index.json").write_text(json.dumps({"chunks": chunks, "config": config, "updated_at": str(time.time())}))
    manifest = {
        **plan,
        "samples": report.samples,
        "skipped": {k: n for k, n in report.skipped.items() if n},
        "reasons": report.reasons,
        "encoding": "PNG (lossless), compress level 1",
        "rsvlm_pack_version": 1,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return report


__all__ = [
    "INSTALL_HINT",
    "JSONL_FORMATS",
    "MANIFEST",
    "PACK_POLICIES",
    "PackReport",
    "PackSettings",
    "decode_record",
    "encode_item",
    "pack",
    "pack_source",
    "require_litdata",
    "resize_region",
    "resize_sample",
]
