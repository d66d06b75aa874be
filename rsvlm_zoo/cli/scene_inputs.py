"""Scene inputs shared by `rsvlm describe` and `rsvlm visualize`: the image's regions and per-region texts.

Regions come from exactly one of an instance-id PNG (`--masks`), a COCO instances file (`--instances`) or a JSON
list of pixel boxes (`--boxes`); every file is read strictly (UTF-8, no NaN/Infinity, sizes checked before
memory is spent) and every failure is a `SceneInputError` naming the file and the reason.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rsvlm_zoo.data.schema import DataFormatError, Region
from rsvlm_zoo.data.validation import validate_region

# Most regions an instance-id PNG may hold; counted before any mask is built (one HxW bool array per region).
MAX_REGIONS = 1024
# Most bytes the masks of an instance-id PNG may take together (regions x height x width booleans).
MAX_MASK_BYTES = 512 * 2**20


class SceneInputError(ValueError):
    """An input file of `rsvlm describe` / `rsvlm visualize` is missing or unusable; the message names the file."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (strict JSON has no NaN or Infinity)")


def _read_json(path: Path, what: str) -> Any:
    """Strict JSON (no NaN/Infinity); every failure is a `SceneInputError` naming `path`."""
    if not path.is_file():
        raise SceneInputError(f"{what} file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise SceneInputError(f"{path}: cannot read the {what} file ({err.strerror or err})") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise SceneInputError(
            f"{path}: byte {raw[err.start]:#04x} at offset {err.start} (line {line}) is not UTF-8; "
            "re-encode the file as UTF-8"
        ) from err
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise SceneInputError(f"{path}: not valid JSON ({err})") from err
    except ValueError as err:  # from _refuse_constant
        raise SceneInputError(f"{path}: not valid JSON ({err})") from err
    except RecursionError as err:
        raise SceneInputError(f"{path}: JSON nested too deeply to read") from err


def read_instance_masks(path: Path, width: int, height: int) -> list[np.ndarray]:
    """Boolean masks from an instance-id PNG, one per non-zero id in increasing order.

    Raises:
        SceneInputError: missing or unreadable file, more than one channel, or a size other than the scene's.
    """
    if not path.is_file():
        raise SceneInputError(f"mask file not found: {path}")
    try:
        with Image.open(path) as im:
            bands = im.getbands()
            if len(bands) != 1:  # checked on the header, before decoding
                raise SceneInputError(
                    f"{path}: instance-id image must have one channel (0 background, k = region k), "
                    f"got mode {im.mode} with {len(bands)} channels"
                )
            if im.size != (width, height):
                raise SceneInputError(f"{path}: masks are {im.size[0]}x{im.size[1]} but the image is {width}x{height}")
            ids = np.asarray(im)  # palette PNGs give their indices, 16-bit PNGs their values
    except SceneInputError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise SceneInputError(f"{path}: cannot read the instance-id image ({err})") from err
    if ids.ndim != 2:
        raise SceneInputError(
            f"{path}: instance-id image must have one channel (0 background, k = region k), got shape {ids.shape}"
        )
    region_ids = np.unique(ids)
    region_ids = region_ids[region_ids != 0]
    if len(region_ids) > MAX_REGIONS:
        raise SceneInputError(
            f"{path}: holds {len(region_ids)} region ids, more than the {MAX_REGIONS} allowed; "
            "is it an instance-id PNG (0 background, k = region k) and not a photo or a depth map?"
        )
    needed = len(region_ids) * width * height
    if needed > MAX_MASK_BYTES:
        raise SceneInputError(
            f"{path}: {len(region_ids)} regions of {width}x{height} need {needed / 2**20:.0f} MiB of masks, "
            f"more than the {MAX_MASK_BYTES / 2**20:.0f} MiB allowed; crop or tile the scene"
        )
    return [ids == k for k in region_ids]  # one HxW bool per region, nothing else of that size


def read_boxes(
    path: Path, width: int | None = None, height: int | None = None
) -> list[tuple[float, float, float, float]]:
    """Boxes from a strict JSON list of `[x1, y1, x2, y2]`.

    Args:
        path: The boxes file.
        width: Scene width; when given (with `height`), boxes far outside the scene are refused.
        height: Scene height.

    Raises:
        SceneInputError: missing file, bad JSON (including NaN/Infinity), more than `MAX_REGIONS` boxes, or a
            box that is not four finite numbers with x2 > x1, y2 > y1 within the margin of the scene
            (`rsvlm_zoo.data.validation.validate_region`).
    """
    data = _read_json(path, "boxes")
    if not isinstance(data, list):
        raise SceneInputError(f"{path}: expected a JSON list of [x1, y1, x2, y2] boxes")
    if len(data) > MAX_REGIONS:
        raise SceneInputError(f"{path}: holds {len(data)} boxes, more than the {MAX_REGIONS} allowed")
    boxes = []
    for k, box in enumerate(data):
        numbers = isinstance(box, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
        if not numbers or len(box) != 4:
            raise SceneInputError(f"{path}: box {k} is {str(box)[:80]}; boxes are [x1, y1, x2, y2] numbers")
        try:
            validate_region(Region(box=tuple(float(v) for v in box)), width, height)
        except (DataFormatError, OverflowError) as err:
            raise SceneInputError(f"{path}: box {k}: {err}") from err
        if not (box[2] > box[0] and box[3] > box[1]):
            raise SceneInputError(f"{path}: box {k} is {box!r}; boxes are [x1, y1, x2, y2] with x2 > x1, y2 > y1")
        boxes.append(tuple(float(v) for v in box))
    return boxes  # type: ignore[return-value]


def read_instances(path: Path, image: Path) -> list[Region]:
    """The regions of `image`'s record in a COCO instances file (matched by file name, then by stem).

    Raises:
        SceneInputError: missing file or no record for the image.
    """
    from rsvlm_zoo.data.readers import read_annotations

    if not path.is_file():
        raise SceneInputError(f"instances file not found: {path}")
    samples = read_annotations("coco", path, images=image.parent)
    for key in (lambda p: p.name, lambda p: p.stem):
        found = [s for s in samples if key(Path(str(s.image))) == key(image)]
        if found:
            return found[0].regions
    names = ", ".join(Path(str(s.image)).name for s in samples[:5])
    raise SceneInputError(f"{path}: no image record named {image.name!r} (it has e.g. {names or 'none'})")


def read_texts(path: Path, what: str, count: int) -> list[str | None]:
    """A JSON list of one string (or null) per region.

    Raises:
        SceneInputError: missing file, bad JSON, wrong element types or a count other than `count`.
    """
    data = _read_json(path, what)
    if not isinstance(data, list) or not all(v is None or isinstance(v, str) for v in data):
        raise SceneInputError(f"{path}: expected a JSON list with one string (or null) per region")
    if len(data) != count:
        raise SceneInputError(f"{path}: has {len(data)} {what} but there are {count} regions")
    return data


def as_region(region: Any) -> Region:
    """A `Region` from a Region, a boolean mask array or an (x1, y1, x2, y2) box."""
    if isinstance(region, Region):
        return region
    return Region(mask=region) if isinstance(region, np.ndarray) else Region(box=tuple(region))


def add_region_arguments(parser: argparse.ArgumentParser, instances_help: str, image_required: bool = True) -> None:
    """`--image` and one of `--masks` / `--instances` / `--boxes`, shared by the scene commands.

    Args:
        parser: The command's parser.
        instances_help: The help text of `--instances`.
        image_required: False when the command has another way to name its scenes (`rsvlm describe --images`).
    """
    parser.add_argument("--image", required=image_required, type=Path, help="the scene (PNG/JPEG/TIFF, any bit depth)")
    regions = parser.add_mutually_exclusive_group(required=True)
    regions.add_argument("--masks", type=Path, help="instance-id PNG: 0 background, k = region k")
    regions.add_argument("--instances", type=Path, help=instances_help)
    regions.add_argument("--boxes", type=Path, help="JSON list of [x1, y1, x2, y2] pixel boxes")


def load_regions(args: argparse.Namespace, width: int, height: int) -> list[Any]:
    """The regions named by `--masks`, `--instances` or `--boxes` (see `add_region_arguments`)."""
    if args.masks is not None:
        return read_instance_masks(args.masks, width, height)
    if args.instances is not None:
        return read_instances(args.instances, args.image)
    return read_boxes(args.boxes, width, height)
