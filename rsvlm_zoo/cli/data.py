"""`rsvlm data`: the annotation checker (`check`, see `rsvlm_zoo.data.check`) and the references writer (`refs`).

`rsvlm data refs <format> <file> [--images DIR] [--split S] [--out refs.json] [--force] [--skip-bad]` turns a
published region benchmark's annotation files into the references file `rsvlm eval --references` reads (formats and
sample ids: `rsvlm_zoo.data.references`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rsvlm_zoo.data.check import SHARDS_FORMAT, check_dataset
from rsvlm_zoo.data.readers import READERS
from rsvlm_zoo.data.references import REF_FORMATS, check_arguments, read_references, write_references
from rsvlm_zoo.data.schema import DataFormatError


def _option(text: str) -> tuple[str, Any]:
    """`--option key=value`: the value as JSON when it parses as JSON, else as the string itself."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--option needs key=value, got {text[:80]!r}")
    try:
        return key, json.loads(value)
    except (json.JSONDecodeError, RecursionError):  # not JSON (or nested past the parser): the plain string
        return key, value


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _refs_main(args: argparse.Namespace) -> int:
    """`rsvlm data refs`: read the benchmark's annotations, write the references file, print a one-line summary."""
    prog = "rsvlm data refs"
    try:
        check_arguments(args.format, args.images, args.split)
    except ValueError as err:
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"{prog}: error: {out} exists; pass --force to overwrite it, or choose another --out", file=sys.stderr)
        return 1
    try:
        refs = read_references(args.format, args.annotation, args.images, args.split, skip_bad=args.skip_bad)
        write_references(refs.records, out, force=args.force)
    except (DataFormatError, FileExistsError, ValueError, OSError, RecursionError) as err:
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    tasks = "/".join(REF_FORMATS[args.format].eval_tasks)
    print(f"{prog}: wrote {refs.summary()} to {out} (for rsvlm eval --task {tasks})")
    return 0


def _pack_main(args: argparse.Namespace) -> int:
    """`rsvlm data pack`: pack the annotation into LitData shards, print a one-line summary."""
    prog = "rsvlm data pack"
    try:
        from rsvlm_zoo.data.pack import pack

        report = pack(
            args.format,
            args.annotation,
            args.out,
            images=args.images,
            split=args.split,
            input_size=args.input_size,
            image_policy=args.image_policy,
            workers=args.workers,
            part_size=args.part_size,
            tile_overlap=args.tile_overlap,
            tile_min_visible=args.tile_min_visible,
            force=args.force,
            options=dict(args.option),
        )
    except (ImportError, DataFormatError, ValueError, OSError, RecursionError) as err:
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    print(f"{prog}: {report.summary()}")
    for kind, found in report.reasons.items():
        for reason in found[:3]:
            print(f"  {kind}: {reason}")
    return 0


def data_main(argv: list[str] | None = None) -> int:
    """Run `rsvlm data check ...`, `rsvlm data refs ...` or `rsvlm data pack ...`.

    `check <format> <annotation> [--images DIR] [--split S] [--option k=v]` counts and checks an annotation source.
    `refs <format> <file> [--images DIR] [--split S] [--out refs.json] [--force] [--skip-bad]` writes a benchmark's
    references file for `rsvlm eval` and prints one summary line (references written, per split, skipped records
    counted by reason).

    Args:
        argv: Arguments after `data` (default: `sys.argv[1:]`).

    Returns:
        0 on success (check: no errors found); 1 when the check found errors, or when the input cannot be read, an
        option value is not allowed, or refs' `--out` exists without `--force` (one line on stderr,
        `rsvlm data check: error: ...` / `rsvlm data refs: error: ...`, naming the file, the record and the
        reason); 2 for bad arguments (argparse, or refs arguments the format cannot use).
    """
    parser = argparse.ArgumentParser(prog="rsvlm data", description="Annotation data tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="count samples/regions and report problems of an annotation source")
    check.add_argument("format", choices=sorted([*READERS, SHARDS_FORMAT]), help="annotation format")
    check.add_argument("annotation", help="annotation file or directory")
    check.add_argument("--images", default=None, help="image directory")
    check.add_argument("--split", default=None, help="split to check")
    check.add_argument("--option", action="append", type=_option, default=[], help="reader option key=value")
    refs = sub.add_parser(
        "refs",
        help="write the references file rsvlm eval reads from a published region benchmark's annotations",
        description="Turn a published region benchmark's annotation files into the references file "
        "(a JSON list) that rsvlm eval --references reads. Formats: "
        + "; ".join(f"{name}: {spec.help}" for name, spec in REF_FORMATS.items()),
    )
    refs.add_argument("format", choices=sorted(REF_FORMATS), help="benchmark format")
    refs.add_argument("annotation", help="annotation file (DIOR-RSVG: the dataset root; RSVG-HR: file or folder)")
    refs.add_argument("--images", default=None, help="image folder (image sizes for the formats whose files lack them)")
    refs.add_argument("--split", default=None, help="split to write (DIOR-RSVG, RSVG-HR)")
    refs.add_argument("--out", default="refs.json", help="references file to write (default: refs.json)")
    refs.add_argument("--force", action="store_true", help="overwrite --out when it exists")
    refs.add_argument("--skip-bad", action="store_true", help="skip and count bad records instead of stopping")
    pack = sub.add_parser(
        "pack",
        help="pack an annotation source into LitData shards resized to the model input (for StreamingSource)",
        description="Read the annotation with its reader (bad records skipped and counted) and write LitData "
        "shards: PNG images (lossless) already at the input policy, regions as RLE/boxes, conversations, ids and "
        "provenance. Run the same command again to continue an interrupted pack.",
    )
    pack.add_argument("format", choices=sorted(READERS), help="annotation format")
    pack.add_argument("annotation", help="annotation file or directory (.jsonl for osprey/llava is read in parts)")
    pack.add_argument("--out", required=True, help="shard directory to write")
    pack.add_argument("--images", default=None, help="image directory")
    pack.add_argument("--split", default=None, help="split to pack")
    pack.add_argument("--input-size", type=int, default=128, help="model input side in pixels (default 128)")
    pack.add_argument("--image-policy", choices=("squash", "tile"), default="squash", help="resize or tile scenes")
    pack.add_argument("--tile-overlap", type=int, default=0, help="tile overlap in pixels (tile)")
    pack.add_argument("--tile-min-visible", type=float, default=0.5, help="fraction keeping a cut region (tile)")
    pack.add_argument("--workers", type=int, default=None, help="packing processes (default: the CPUs; same shards)")
    pack.add_argument("--part-size", type=int, default=20000, help="samples per resumable part (default 20000)")
    pack.add_argument("--force", action="store_true", help="replace a finished or interrupted pack in --out")
    pack.add_argument("--option", action="append", type=_option, default=[], help="reader option key=value")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: 2 for bad arguments, 0 for --help
        return int(exit_.code or 0)
    if args.command == "refs":
        return _refs_main(args)
    if args.command == "pack":
        return _pack_main(args)
    options = dict(args.option)
    allowed = {"encoding_errors": ("strict", "replace"), "on_bad_record": ("error", "skip")}
    for key, values in allowed.items():
        if key in options and options[key] not in values:
            print(
                f"rsvlm data check: error: --option {key}={str(options[key])[:60]!r} is not allowed; "
                f"allowed values: {', '.join(values)}",
                file=sys.stderr,
            )
            return 1
    try:
        report = check_dataset(args.format, args.annotation, args.images, args.split, **options)
    except (DataFormatError, ValueError, OSError, RecursionError) as err:  # ValueError includes UnicodeDecodeError
        print(f"rsvlm data check: error: {_one_line(err)}", file=sys.stderr)
        return 1
    print(report.table())
    return 1 if report.errors else 0
