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
JSON list with one string (or null) per region. `--references` has the same form. Exit status: 0 on
success, 1 when the inputs cannot be used (the reason is printed), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rsvlm_zoo.data.images import load_image
from rsvlm_zoo.data.schema import DataFormatError, Region


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
    parser.add_argument("--scale", type=float, default=1.0, help="multiplier for text, tag and line sizes")
    parser.add_argument("--out", required=True, type=Path, help="PNG figure to write")
    return parser


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise VisualizeInputError(f"{what} file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VisualizeInputError(f"{path}: not valid JSON ({err})") from err


def read_instance_masks(path: Path, width: int, height: int) -> list[np.ndarray]:
    """Boolean masks from an instance-id PNG, one per non-zero id in increasing order.

    Raises:
        VisualizeInputError: missing or unreadable file, more than one channel, or a size other than the scene's.
    """
    if not path.is_file():
        raise VisualizeInputError(f"mask file not found: {path}")
    try:
        with Image.open(path) as im:
            ids = np.asarray(im)  # palette PNGs give their indices, 16-bit PNGs their values
    except OSError as err:
        raise VisualizeInputError(f"{path}: cannot read the instance-id image ({err})") from err
    if ids.ndim != 2:
        raise VisualizeInputError(
            f"{path}: instance-id image must have one channel (0 background, k = region k), got shape {ids.shape}"
        )
    if ids.shape != (height, width):
        raise VisualizeInputError(f"{path}: masks are {ids.shape[1]}x{ids.shape[0]} but the image is {width}x{height}")
    return [ids == k for k in np.unique(ids) if k != 0]


def read_boxes(path: Path) -> list[tuple[float, float, float, float]]:
    """Boxes from a JSON list of `[x1, y1, x2, y2]`.

    Raises:
        VisualizeInputError: missing file, bad JSON, or a box that is not four numbers with x2 > x1, y2 > y1.
    """
    data = _read_json(path, "boxes")
    if not isinstance(data, list):
        raise VisualizeInputError(f"{path}: expected a JSON list of [x1, y1, x2, y2] boxes")
    boxes = []
    for k, box in enumerate(data):
        ok = isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)
        if not ok or not (box[2] > box[0] and box[3] > box[1]):
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

    model = build_model(name, pretrained=pretrained, init_checkpoint=checkpoint).eval()
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
    return read_boxes(args.boxes)


def visualize_main(argv: list[str] | None = None) -> int:
    """Run `rsvlm visualize` with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.model and args.answers:
        print("error: give either --model or --answers, not both", file=sys.stderr)
        return 2
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
    except (VisualizeInputError, DataFormatError, FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.save(args.out)
    print(f"wrote {args.out} ({len(regions)} regions, {figure.width}x{figure.height})")
    return 0


if __name__ == "__main__":
    sys.exit(visualize_main())
