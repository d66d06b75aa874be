"""`rsvlm visualize`: draw a scene's regions with (model or given) answers into one PNG figure.

Usage::

    rsvlm visualize --image scene.png (--masks masks.png | --instances instances.json | --boxes boxes.json)
                    [--model (NAME | EXPORT_DIR | RUN.ckpt) [--checkpoint FILE] [--pretrained] [--prompt TEXT]
                     [--max-new-tokens N]]
                    [--answers answers.json] [--references refs.json] [--scale S] --out figure.png

The figure stays within about two scene heights at any region count: answers that do not fit beside the
scene go to a multi-column legend under it, one line each, cut with an ellipsis rather than drawn below
`rsvlm_zoo.viz.regions.MIN_FONT_SIZE` pixels (the legend's first line says how many were cut).

Regions come from exactly one of: an instance-id PNG (`--masks`: 0 is background, pixel value k marks
region k; regions are numbered in increasing id order), a COCO instances file (`--instances`: the image
record whose file name matches `--image`), or a JSON list of `[x1, y1, x2, y2]` pixel boxes (`--boxes`).

Answers come from `--model` (a registered name, an exported directory or a checkpoint, with `--checkpoint` and
`--pretrained` meaning what they mean in every command, see `rsvlm_zoo.cli.model_args`; its `describe()` answers
every region: mask models get masks, box models get boxes, converted when needed) or from `--answers`, a
JSON list with one string (or null) per region. `--references` has the same form.

Hostile inputs are refused before they cost memory or time: JSON with `NaN`/`Infinity` literals, boxes that are
not finite, ordered (x1 < x2, y1 < y2) and within `rsvlm_zoo.data.validation.MARGIN` image sizes of the scene,
an instance-id PNG of another size or with more than `rsvlm_zoo.cli.scene_inputs.MAX_REGIONS`
ids (checked before any mask is built), a
checkpoint that is no checkpoint, `--scale` that is not a positive finite number, `--out` naming a directory.

Exit status: 0 on success; 1 when the inputs cannot be used (one line on stderr, `rsvlm visualize: error: ...`,
naming the file, the record and the reason); 2 for bad arguments (argparse, including `--scale`).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rsvlm_zoo.cli.describe import describe_regions
from rsvlm_zoo.cli.model_args import ModelInputError, ModelUsageError, add_model_arguments, load_model
from rsvlm_zoo.cli.scene_inputs import SceneInputError, add_region_arguments, as_region, load_regions, read_texts
from rsvlm_zoo.data.images import load_image
from rsvlm_zoo.data.schema import DataFormatError
from rsvlm_zoo.registry import UnknownModelError


def build_parser() -> argparse.ArgumentParser:
    """The `rsvlm visualize` argument parser."""
    parser = argparse.ArgumentParser(
        prog="rsvlm visualize", description="Draw a scene's numbered regions and their answers into a PNG figure."
    )
    add_region_arguments(parser, "COCO instances JSON; the record of --image is drawn")
    add_model_arguments(parser, required=False)
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


def model_answers(
    model: Any,
    image: np.ndarray,
    regions: list[Any],
    prompt: str | None = None,
    max_new_tokens: int | None = None,
) -> list[str]:
    """One answer per region from a model's `describe()`.

    Mask models (`input_spec().region_kind == "mask"`) get masks, box models get boxes (MGIMM answers
    each box with `task="attributes"`); regions of the other kind are converted.
    """
    return list(describe_regions(model, image, [as_region(r) for r in regions], prompt, max_new_tokens))


def layout_summary(figure: Any) -> str:
    """Where the text went (beside the scene, legend, shortened), for a figure that needed a legend; else ""."""
    layout = figure.info.get("layout")
    if layout is None or not layout.legend:
        return ""
    return (
        f"; {layout.beside} beside the scene, {layout.legend} in the legend in {layout.legend_columns} columns"
        f" at {layout.legend_font_size} px, {layout.shortened} shortened with an ellipsis"
    )


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
    if (args.checkpoint or args.pretrained) and not args.model:
        print("rsvlm visualize: error: --checkpoint and --pretrained need --model", file=sys.stderr)
        return 2
    if args.out.is_dir():
        return _fail(f"--out {args.out} is a directory; give the PNG file to write")
    from rsvlm_zoo.viz.regions import render_regions

    try:
        if not args.image.is_file():
            raise SceneInputError(f"image file not found: {args.image}")
        image = load_image(args.image)
        height, width = image.shape[:2]
        regions = load_regions(args, width, height)
        answers = read_texts(args.answers, "answers", len(regions)) if args.answers else None
        references = read_texts(args.references, "references", len(regions)) if args.references else None
        if args.model:
            model = load_model(args.model, args.checkpoint, args.pretrained)
            answers = model_answers(model, image, regions, args.prompt, args.max_new_tokens)
        figure = render_regions(image, regions, answers, references, scale=args.scale)
    except ModelUsageError as err:
        print(f"rsvlm visualize: error: {err}", file=sys.stderr)
        return 2
    except UnknownModelError as err:
        return _fail(err.args[0] if err.args else err)
    except (SceneInputError, ModelInputError, DataFormatError, ValueError, KeyError, OSError, RecursionError) as err:
        return _fail(err)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        figure.save(args.out)
    except (OSError, ValueError) as err:  # ValueError: a suffix PIL knows no format for
        return _fail(f"cannot write {args.out}: {err}")
    print(f"wrote {args.out} ({len(regions)} regions, {figure.width}x{figure.height}{layout_summary(figure)})")
    return 0


if __name__ == "__main__":
    sys.exit(visualize_main())
