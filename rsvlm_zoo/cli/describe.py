"""`rsvlm describe`: answer a question about every region of one scene with a model's `describe()`.

Usage::

    rsvlm describe --model (NAME | EXPORT_DIR | RUN.ckpt) --image scene.png
                   (--masks masks.png | --instances instances.json | --boxes boxes.json)
                   [--checkpoint FILE] [--pretrained] [--prompt TEXT] [--max-new-tokens N]
                   [--task attributes|description] [--device DEVICE] [--json out.json]
    rsvlm describe --model ... --instances instances.json --images DIR --jsonl out.jsonl [--resume] [...]

Many scenes: `--images DIR` with a COCO `--instances` file describes every image record of that file (one model,
loaded once), with a progress bar over scenes (`rsvlm_zoo.progress`), and appends each scene's record to
`--jsonl` as one JSON line as soon as it is answered, so a stopped run keeps what it did: `--resume` skips the
scenes the file already holds; without it an existing `--jsonl` is refused, never overwritten. Scenes without
regions are skipped and counted.

`--model` is a path when one exists there (an exported directory or a Lightning checkpoint, loaded by
`rsvlm_zoo.weights.export.from_pretrained`), otherwise a registered name (`rsvlm_zoo.list_models()`), built with
`build_model(name, pretrained=...)` and then given `--checkpoint`'s weights. A model file that is no Lightning
checkpoint (a text file, an image, a truncated archive) is refused before it is unpickled (`check_model_file`).
Regions are read as `rsvlm visualize` reads them: an
instance-id PNG (`--masks`: 0 is background, pixel value k marks a region; regions are numbered in increasing
id order), the record of `--image` in a COCO instances file (`--instances`), or a JSON list of
`[x1, y1, x2, y2]` pixel boxes (`--boxes`).

The scene goes through one `describe()` call. Mask models get masks (boxes are filled in); box models get
boxes (masks are reduced to their tight box) and a `--task`: `attributes` (the default, one answer per box) or
`description` (one text about the scene using all its boxes). One line per region, `regionK: answer`, is
printed (or the description), and `--json` writes the image, the regions and the answers as strict JSON (no
NaN or Infinity: every number in it is finite by construction, and a non-finite one is an error).

`--boxes` are checked before any model is built: each box is four finite numbers (`NaN`/`Infinity` literals
are refused while parsing) with x1 < x2, y1 < y2, within `rsvlm_zoo.data.validation.MARGIN` image sizes of the
scene. `--masks` holds at most `rsvlm_zoo.cli.scene_inputs.MAX_REGIONS` regions.

Exit status: 0 on success; 1 when an input or the model cannot be used (one line on stderr, `rsvlm describe:
error: ...`, naming the file, the record and the reason); 2 for bad arguments, including `--task` for a mask
model and `--checkpoint`/`--pretrained` with a model path.

Over 300 lines only through this usage text; the code is about 290 lines.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rsvlm_zoo.cli.model_args import ModelInputError, ModelUsageError, add_model_arguments, load_model
from rsvlm_zoo.cli.scene_inputs import SceneInputError, add_region_arguments, as_region, load_regions
from rsvlm_zoo.data.images import load_image
from rsvlm_zoo.data.schema import DataFormatError, Region
from rsvlm_zoo.registry import UnknownModelError

TASKS = ("attributes", "description")


def build_parser() -> argparse.ArgumentParser:
    """The `rsvlm describe` argument parser."""
    parser = argparse.ArgumentParser(
        prog="rsvlm describe", description="Answer a question about every region of a scene with a region VLM."
    )
    add_model_arguments(parser, required=True)
    add_region_arguments(
        parser, "COCO instances JSON; the record of --image is used (with --images: every record)", False
    )
    parser.add_argument("--images", type=Path, default=None, help="many scenes: the folder of --instances' images")
    parser.add_argument("--jsonl", type=Path, default=None, help="many scenes: one JSON line per scene, as answered")
    parser.add_argument("--resume", action="store_true", help="many scenes: skip the scenes --jsonl already holds")
    parser.add_argument("--prompt", default=None, help="question (default: the model's own)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="generation length (default: the model's)")
    parser.add_argument(
        "--task", choices=TASKS, default=None, help="box models: one answer per box (attributes, default) or one text"
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--json", type=Path, default=None, help="write image, regions and answers to this JSON file")
    return parser


def region_kind(model: Any) -> str:
    """`"mask"`, `"box"` or `"text"` (boxes written into the prompt): the regions the model's `describe()` takes.

    Raises:
        ModelInputError: when the model has no `describe()`.
    """
    if not callable(getattr(model, "describe", None)):
        raise ModelInputError(f"{type(model).__name__} has no describe() method")
    kind = model.input_spec().region_kind
    return kind if kind in ("box", "text") else "mask"


def describe_regions(
    model: Any,
    image: np.ndarray,
    regions: list[Region],
    prompt: str | None = None,
    max_new_tokens: int | None = None,
    task: str | None = None,
) -> list[str] | str:
    """One `describe()` call on the scene, with the region geometry the model takes.

    Args:
        model: A region VLM with `describe()`.
        image: HxWx3 uint8 scene.
        regions: The scene's regions (any geometry; converted to the model's kind).
        prompt: The question (None: the model's own).
        max_new_tokens: Generation length (None: the model's default).
        task: Box models only: "attributes" (default) or "description".

    Returns:
        One answer per region, or, for `task="description"`, the scene's description.

    Raises:
        ModelUsageError: `task` given for a mask model.
    """
    height, width = image.shape[:2]
    kind = region_kind(model)
    if kind == "text":  # boxes written as text in the question (GeoChat's [identify])
        if task is not None:
            raise ModelUsageError(f"--task applies to region-token box models; {type(model).__name__} answers per box")
        boxes = [r.to_box() for r in regions]
        return list(model.describe([image], [boxes], prompt=prompt, max_new_tokens=max_new_tokens)[0])
    if kind == "box":
        task = task or "attributes"
        boxes = [r.to_box() for r in regions]
        out = model.describe([image], [boxes], prompt=prompt, max_new_tokens=max_new_tokens, task=task)
        return out[0] if task == "description" else list(out[0])
    if task is not None:
        raise ModelUsageError(f"--task applies to box models only; {type(model).__name__} takes masks")
    masks = [r.to_mask(height, width) for r in regions]
    return list(model.describe([image], [masks], prompt=prompt, max_new_tokens=max_new_tokens)[0])


def _region_record(k: int, region: Region, height: int, width: int) -> dict[str, Any]:
    record: dict[str, Any] = {"name": f"region{k}", "box": [round(float(v), 2) for v in region.to_box()]}
    if region.has_mask_geometry:
        record["area"] = int(region.to_mask(height, width).sum())
    if region.category is not None:
        record["category"] = region.category
    return record


def describe_record(
    args: argparse.Namespace,
    image: np.ndarray,
    regions: list[Region],
    result: list[str] | str,
    task: str | None,
    image_path: Path | None = None,
) -> dict[str, Any]:
    """The `--json` content: image, model, question, every region (name, box, area, category) and the answers.

    `image_path` names the scene when it is not `--image` (many scenes).
    """
    height, width = image.shape[:2]
    source = next((flag, str(getattr(args, flag))) for flag in ("masks", "instances", "boxes") if getattr(args, flag))
    record: dict[str, Any] = {
        "image": str(image_path or args.image),
        "width": width,
        "height": height,
        "model": args.model,
        "regions_from": {source[0]: source[1]},
        "task": task,
        "prompt": args.prompt,
        "max_new_tokens": args.max_new_tokens,
        "regions": [_region_record(k, r, height, width) for k, r in enumerate(regions, start=1)],
    }
    if isinstance(result, str):
        record["description"] = result
    else:
        for entry, answer in zip(record["regions"], result, strict=True):
            entry["answer"] = answer
    return record


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _strict_line(record: dict[str, Any], where: Path) -> str:
    try:
        return json.dumps(record, ensure_ascii=False, allow_nan=False)
    except ValueError as err:  # boxes are validated finite, so this is a bug, reported rather than written
        raise ModelInputError(f"{where}: not written, the record holds a non-finite number ({err})") from err


def _described_images(path: Path) -> set[str]:
    """The `image` of every record an earlier run wrote to `path` (for `--resume`)."""
    done: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                done.add(str(json.loads(line)["image"]))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ModelInputError(
                    f"{path}: line {n} is not a record of rsvlm describe ({err}); remove it (a run stopped while "
                    "writing leaves an incomplete last line) and run again with --resume"
                ) from err
    return done


def _check_many_args(args: argparse.Namespace) -> None:
    """Refuse, before a model is built, a mix of one-scene and many-scene flags (exit 2) or unusable paths (1)."""
    if (args.image is None) == (args.images is None):
        raise ModelUsageError("give exactly one of --image (one scene) or --images DIR (every scene of --instances)")
    if args.images is None:
        if args.jsonl is not None or args.resume:
            raise ModelUsageError("--jsonl and --resume are for many scenes (--images); one scene writes --json")
        return
    if args.instances is None:
        raise ModelUsageError("--images describes every record of a COCO --instances file; give --instances")
    if args.jsonl is None or args.json is not None:
        raise ModelUsageError("many scenes are written to --jsonl (one line per scene as it is answered), not --json")
    if not args.images.is_dir():
        raise ModelInputError(f"--images {args.images} is not a folder")
    if args.jsonl.is_dir():
        raise ModelInputError(f"--jsonl {args.jsonl} is a directory; give the JSONL file to write")
    if args.jsonl.exists() and not args.resume:
        raise ModelInputError(
            f"{args.jsonl} exists and is kept; pass --resume to skip the scenes it holds, or name another file"
        )


def _run_many(args: argparse.Namespace, model: Any, task: str | None) -> int:
    from rsvlm_zoo.data.readers import read_annotations
    from rsvlm_zoo.progress import progress

    done = _described_images(args.jsonl) if args.jsonl.exists() else set()
    samples = read_annotations("coco", args.instances, images=args.images)
    todo = [s for s in samples if str(s.image) not in done]
    empty = [s for s in todo if not s.regions]
    todo = [s for s in todo if s.regions]
    if done:
        skipped = len(samples) - len(todo) - len(empty)
        print(f"{args.jsonl}: {skipped} scene(s) already described, skipped", file=sys.stderr)
    if empty:
        names = ", ".join(Path(str(s.image)).name for s in empty[:5])
        print(f"{args.instances}: {len(empty)} scene(s) without regions skipped (e.g. {names})", file=sys.stderr)
    args.jsonl.parent.mkdir(parents=True, exist_ok=True)
    with args.jsonl.open("a", encoding="utf-8") as out:
        for sample in progress(todo, desc="describe", unit="scene"):
            path = Path(str(sample.image))
            image = load_image(path)
            regions = list(sample.regions)
            result = describe_regions(model, image, regions, args.prompt, args.max_new_tokens, task)
            out.write(_strict_line(describe_record(args, image, regions, result, task, path), args.jsonl) + "\n")
            out.flush()  # each scene is kept as soon as it is answered
            answers = [result] if isinstance(result, str) else result
            for k, answer in enumerate(answers, start=1):
                print(f"{path.name} {'description' if isinstance(result, str) else f'region{k}'}: {_one_line(answer)}")
    print(f"described {len(todo)} scene(s) into {args.jsonl}", file=sys.stderr)
    return 0


def _run(args: argparse.Namespace) -> int:
    _check_many_args(args)
    if args.images is not None:
        import torch

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = load_model(args.model, args.checkpoint, args.pretrained).eval().to(device)
        return _run_many(args, model, args.task or ("attributes" if region_kind(model) == "box" else None))
    if not args.image.is_file():
        raise ModelInputError(f"image file not found: {args.image}")
    if args.json is not None and args.json.is_dir():
        raise ModelInputError(f"--json {args.json} is a directory; give the JSON file to write")
    image = load_image(args.image)
    height, width = image.shape[:2]
    regions = [as_region(r) for r in load_regions(args, width, height)]
    source = args.masks or args.instances or args.boxes
    if not regions:
        raise ModelInputError(f"{source}: holds no regions; nothing to describe")
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(args.model, args.checkpoint, args.pretrained).eval().to(device)
    task = args.task or ("attributes" if region_kind(model) == "box" else None)
    result = describe_regions(model, image, regions, args.prompt, args.max_new_tokens, task)
    if isinstance(result, str):
        print(_one_line(result))
    else:
        for k, answer in enumerate(result, start=1):
            print(f"region{k}: {_one_line(answer)}")
    if args.json is not None:
        record = describe_record(args, image, regions, result, task)
        try:
            text = json.dumps(record, indent=2, ensure_ascii=False, allow_nan=False)
        except ValueError as err:  # boxes are validated finite, so this is a bug, reported rather than written
            raise ModelInputError(f"{args.json}: not written, the record holds a non-finite number ({err})") from err
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(text + "\n", encoding="utf-8")
        except OSError as err:
            raise ModelInputError(f"cannot write {args.json}: {err}") from err
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def describe_main(argv: list[str] | None = None) -> int:
    """Run `rsvlm describe` with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: 2 for bad arguments, 0 for --help
        return int(exit_.code or 0)
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        print(f"rsvlm describe: error: --max-new-tokens must be at least 1, got {args.max_new_tokens}", file=sys.stderr)
        return 2
    try:
        return _run(args)
    except ModelUsageError as err:
        print(f"rsvlm describe: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except UnknownModelError as err:
        print(f"rsvlm describe: error: {err}", file=sys.stderr)
        return 1
    except (ModelInputError, SceneInputError, DataFormatError, ValueError, OSError, RecursionError) as err:
        print(f"rsvlm describe: error: {_one_line(str(err)) or type(err).__name__}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(describe_main())
