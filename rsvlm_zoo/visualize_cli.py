"""`rsvlm visualize`: draw a scene's regions with (model or given) answers into one PNG figure.

Usage::

    rsvlm visualize --image scene.png (--masks masks.png | --instances instances.json | --boxes boxes.json)
                    [--model NAME [--checkpoint FILE] [--prompt TEXT] [--max-new-tokens N]]
                    [--answers answers.json] [--references refs.json] [--scale S] --out figure.png

Regions come from exactly one of: an instance-id PNG (`--masks`: 0 is background, pixel value k marks
region k; regions are numbered in increasing id order), a COCO instances file (`--instances`: the image
record whose file name matches `--image`), or a JSON list of `[x1, y1, x2, y2]` pixel boxes (`--boxes`).

Answers come from `--model` (a registered name, see `rsvlm_zoo.list_models()`; its `describe()` answers
every region: mask models get masks, box models get boxes, converted when needed) or from `--answers`, a
JSON list with one string (or null) per region. `--references` has the same form.

Hostile inputs are refused before they cost memory or time: JSON with `NaN`/`Infinity` literals, boxes that are
not finite, ordered (x1 < x2, y1 < y2) and within `rsvlm_zoo.data.validation.MARGIN` image sizes of the scene,
an instance-id PNG of another size or with more than `MAX_REGIONS` ids (checked before any mask is built), a
checkpoint that is no checkpoint, `--scale` that is not a positive finite number, `--out` naming a directory.

Exit status: 0 on success; 1 when the inputs cannot be used (one line on stderr, `rsvlm visualize: error: ...`,
naming the file, the record and the reason); 2 for bad arguments (argparse, including `--scale`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rsvlm_zoo.data.images import load_image
from rsvlm_zoo.data.schema import DataFormatError, Region
from rsvlm_zoo.data.validation import validate_region
from rsvlm_zoo.model_files import check_model_file, loading_model_file
from rsvlm_zoo.registry import UnknownModelError

# Most regions an instance-id PNG may hold; counted before any mask is built (one HxW bool array per region).
MAX_REGIONS = 1024
# Most bytes the masks of an instance-id PNG may take together (regions x height x width booleans).
MAX_MASK_BYTES = 512 * 2**20


class VisualizeInputError(ValueError):
    """An input file of `rsvlm visualize` is missing or unusable; the message names the file."""


def build_parser() -> argparse.ArgumentParser:
    """The `rsvlm visualize` argument parser."""
    parser = argparse.ArgumentParser(
        prog="rsvlm visualize", description="Draw a scene's numbered regions and their answers into a PNG figure."
    )
    add_region_arguments(parser, "COCO instances JSON; the record of --image is drawn")
    parser.add_argument("--model", default=None, help="registered model name whose describe() answers the regions")
    parser.add_argument("--checkpoint", default=None, help="weights for --model (passed as init_checkpoint)")
    parser.add_argument("--pretrained", action="store_true", help="build --model with its pretrained weights")
    parser.add_argument("--prompt", default=None, help="question for --model (default: the model's own)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="generation length for --model")
    parser.add_argument("--answers", type=Path, default=None, help="JSON list: one answer (or null) per region")
    parser.add_argument("--references", type=Path, default=None, help="JSON list: one reference (or null) per region")
    parser.add_argument("--scale", type=positive_scale, default=1.0, help="multiplier for text, tag and line sizes")
    parser.add_argument("--out", required=True, type=Path, help="PNG figure to write")
    return parser


MAX_SCALE = 100.0


def positive_scale(text: str) -> float:
    """`--scale`: a finite number in (0, MAX_SCALE] (argparse type; NaN, infinities, zero and negatives fail)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and 0 < value <= MAX_SCALE):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number greater than 0 and at most {MAX_SCALE:g}")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (strict JSON has no NaN or Infinity)")


def _read_json(path: Path, what: str) -> Any:
    """Strict JSON (no NaN/Infinity); every failure is a `VisualizeInputError` naming `path`."""
    if not path.is_file():
        raise VisualizeInputError(f"{what} file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise VisualizeInputError(f"{path}: cannot read the {what} file ({err.strerror or err})") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise VisualizeInputError(
            f"{path}: byte {raw[err.start]:#04x} at offset {err.start} (line {line}) is not UTF-8; "
            "re-encode the file as UTF-8"
        ) from err
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise VisualizeInputError(f"{path}: not valid JSON ({err})") from err
    except ValueError as err:  # from _refuse_constant
        raise VisualizeInputError(f"{path}: not valid JSON ({err})") from err
    except RecursionError as err:
        raise VisualizeInputError(f"{path}: JSON nested too deeply to read") from err


def read_instance_masks(path: Path, width: int, height: int) -> list[np.ndarray]:
    """Boolean masks from an instance-id PNG, one per non-zero id in increasing order.

    Raises:
        VisualizeInputError: missing or unreadable file, more than one channel, or a size other than the scene's.
    """
    if not path.is_file():
        raise VisualizeInputError(f"mask file not found: {path}")
    try:
        with Image.open(path) as im:
            bands = im.getbands()
            if len(bands) != 1:  # checked on the header, before decoding
                raise VisualizeInputError(
                    f"{path}: instance-id image must have one channel (0 background, k = region k), "
                    f"got mode {im.mode} with {len(bands)} channels"
                )
            if im.size != (width, height):
                raise VisualizeInputError(
                    f"{path}: masks are {im.size[0]}x{im.size[1]} but the image is {width}x{height}"
                )
            ids = np.asarray(im)  # palette PNGs give their indices, 16-bit PNGs their values
    except VisualizeInputError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise VisualizeInputError(f"{path}: cannot read the instance-id image ({err})") from err
    if ids.ndim != 2:
        raise VisualizeInputError(
            f"{path}: instance-id image must have one channel (0 background, k = region k), got shape {ids.shape}"
        )
    region_ids = np.unique(ids)
    region_ids = region_ids[region_ids != 0]
    if len(region_ids) > MAX_REGIONS:
        raise VisualizeInputError(
            f"{path}: holds {len(region_ids)} region ids, more than the {MAX_REGIONS} allowed; "
            "is it an instance-id PNG (0 background, k = region k) and not a photo or a depth map?"
        )
    needed = len(region_ids) * width * height
    if needed > MAX_MASK_BYTES:
        raise VisualizeInputError(
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
        VisualizeInputError: missing file, bad JSON (including NaN/Infinity), more than `MAX_REGIONS` boxes, or a
            box that is not four finite numbers with x2 > x1, y2 > y1 within the margin of the scene
            (`rsvlm_zoo.data.validation.validate_region`).
    """
    data = _read_json(path, "boxes")
    if not isinstance(data, list):
        raise VisualizeInputError(f"{path}: expected a JSON list of [x1, y1, x2, y2] boxes")
    if len(data) > MAX_REGIONS:
        raise VisualizeInputError(f"{path}: holds {len(data)} boxes, more than the {MAX_REGIONS} allowed")
    boxes = []
    for k, box in enumerate(data):
        numbers = isinstance(box, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
        if not numbers or len(box) != 4:
            raise VisualizeInputError(f"{path}: box {k} is {str(box)[:80]}; boxes are [x1, y1, x2, y2] numbers")
        try:
            validate_region(Region(box=tuple(float(v) for v in box)), width, height)
        except (DataFormatError, OverflowError) as err:
            raise VisualizeInputError(f"{path}: box {k}: {err}") from err
        if not (box[2] > box[0] and box[3] > box[1]):
            raise VisualizeInputError(f"{path}: box {k} is {box!r}; boxes are [x1, y1, x2, y2] with x2 > x1, y2 > y1")
        boxes.append(tuple(float(v) for v in box))
    return boxes  # type: ignore[return-value]


def read_instances(path: Path, image: Path) -> list[Region]:
    """The regions of `image`'s record in a COCO instances file (matched by file name, then by stem).

    Raises:
        VisualizeInputError: missing file or no record for the image.
    """
    from rsvlm_zoo.data.readers import read_annotations

    if not path.is_file():
        raise VisualizeInputError(f"instances file not found: {path}")
    samples = read_annotations("coco", path, images=image.parent)
    for key in (lambda p: p.name, lambda p: p.stem):
        found = [s for s in samples if key(Path(str(s.image))) == key(image)]
        if found:
            return found[0].regions
    names = ", ".join(Path(str(s.image)).name for s in samples[:5])
    raise VisualizeInputError(f"{path}: no image record named {image.name!r} (it has e.g. {names or 'none'})")


def read_texts(path: Path, what: str, count: int) -> list[str | None]:
    """A JSON list of one string (or null) per region.

    Raises:
        VisualizeInputError: missing file, bad JSON, wrong element types or a count other than `count`.
    """
    data = _read_json(path, what)
    if not isinstance(data, list) or not all(v is None or isinstance(v, str) for v in data):
        raise VisualizeInputError(f"{path}: expected a JSON list with one string (or null) per region")
    if len(data) != count:
        raise VisualizeInputError(f"{path}: has {len(data)} {what} but there are {count} regions")
    return data


def as_region(region: Any) -> Region:
    """A `Region` from a Region, a boolean mask array or an (x1, y1, x2, y2) box."""
    if isinstance(region, Region):
        return region
    return Region(mask=region) if isinstance(region, np.ndarray) else Region(box=tuple(region))


def model_answers(
    name: str,
    image: np.ndarray,
    regions: list[Any],
    checkpoint: str | None = None,
    pretrained: bool = False,
    prompt: str | None = None,
    max_new_tokens: int | None = None,
) -> list[str]:
    """One answer per region from a registered model's `describe()`.

    Mask models (`input_spec().region_kind == "mask"`) get masks, box models get boxes (MGIMM answers
    each box with `task="attributes"`); regions of the other kind are converted.
    """
    from rsvlm_zoo import build_model
    from rsvlm_zoo.describe_cli import describe_regions

    if checkpoint is not None:
        check_model_file(checkpoint, allow_safetensors=True)
    with loading_model_file(checkpoint or name, passthrough=(UnknownModelError,)):
        model = build_model(name, pretrained=pretrained, init_checkpoint=checkpoint)
    model = model.eval()
    return list(describe_regions(model, image, [as_region(r) for r in regions], prompt, max_new_tokens))


def add_region_arguments(parser: argparse.ArgumentParser, instances_help: str) -> None:
    """`--image` and one of `--masks` / `--instances` / `--boxes`, shared by the scene commands."""
    parser.add_argument("--image", required=True, type=Path, help="the scene (PNG/JPEG/TIFF, any bit depth)")
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


def _fail(message: Any) -> int:
    text = " ".join(str(message).split()) or "unknown error"
    print(f"rsvlm visualize: error: {text}", file=sys.stderr)
    return 1


def visualize_main(argv: list[str] | None = None) -> int:
    """Run `rsvlm visualize` with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: 2 for bad arguments, 0 for --help
        return int(exit_.code or 0)
    if args.model and args.answers:
        print("rsvlm visualize: error: give either --model or --answers, not both", file=sys.stderr)
        return 2
    if args.out.is_dir():
        return _fail(f"--out {args.out} is a directory; give the PNG file to write")
    from rsvlm_zoo.visualize import render_regions

    try:
        if not args.image.is_file():
            raise VisualizeInputError(f"image file not found: {args.image}")
        image = load_image(args.image)
        height, width = image.shape[:2]
        regions = load_regions(args, width, height)
        answers = read_texts(args.answers, "answers", len(regions)) if args.answers else None
        references = read_texts(args.references, "references", len(regions)) if args.references else None
        if args.model:
            answers = model_answers(
                args.model, image, regions, args.checkpoint, args.pretrained, args.prompt, args.max_new_tokens
            )
        figure = render_regions(image, regions, answers, references, scale=args.scale)
    except UnknownModelError as err:
        return _fail(err.args[0] if err.args else err)
    except (VisualizeInputError, DataFormatError, ValueError, KeyError, OSError, RecursionError) as err:
        return _fail(err)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        figure.save(args.out)
    except (OSError, ValueError) as err:  # ValueError: a suffix PIL knows no format for
        return _fail(f"cannot write {args.out}: {err}")
    print(f"wrote {args.out} ({len(regions)} regions, {figure.width}x{figure.height})")
    return 0


if __name__ == "__main__":
    sys.exit(visualize_main())
