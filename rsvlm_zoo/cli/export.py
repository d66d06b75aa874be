"""`rsvlm export`: write a deployable model directory (see `rsvlm_zoo.weights.export`)."""

from __future__ import annotations

import argparse
import sys

from rsvlm_zoo.cli.model_args import ModelUsageError, add_model_arguments, load_model
from rsvlm_zoo.registry import UnknownModelError
from rsvlm_zoo.weights.export import export_model


def export_main(argv: list[str]) -> int:
    """`rsvlm export --model (RUN.ckpt | EXPORT_DIR | NAME [--checkpoint FILE]) --out DIR [--merge] [--overwrite]`.

    `--model`, `--checkpoint` and `--pretrained` mean what they mean in every command (`rsvlm_zoo.cli.model_args`).

    Returns:
        0 when the directory was written; 1 when the checkpoint cannot be used or `--out` cannot be written (one
        line on stderr, `rsvlm export: error: ...`, naming the file and the reason; a file that is no Lightning
        checkpoint is refused before it is unpickled); 2 for bad arguments.
    """
    parser = argparse.ArgumentParser(prog="rsvlm export", description="Write a deployable model directory.")
    add_model_arguments(parser, required=True)
    parser.add_argument("--out", required=True, help="directory to write")
    parser.add_argument("--merge", action="store_true", help="merge the LoRA adapter into the LLM")
    parser.add_argument(
        "--force",
        "--overwrite",
        dest="overwrite",
        action="store_true",
        help="replace an existing --out directory (--force as in `rsvlm data`; --overwrite is the same flag)",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: 2 for bad arguments, 0 for --help
        return int(exit_.code or 0)
    try:
        model = load_model(args.model, args.checkpoint, args.pretrained)
        out = export_model(model, args.out, merge=args.merge, overwrite=args.overwrite)
    except ModelUsageError as err:
        print(f"rsvlm export: error: {err}", file=sys.stderr)
        return 2
    except UnknownModelError as err:
        print(f"rsvlm export: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, OSError, RecursionError) as err:  # FileNotFoundError and FileExistsError are OSErrors
        print(f"rsvlm export: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    size = sum((out / f).stat().st_size for f in files)
    print(f"wrote {out} ({len(files)} files, {size / 2**20:.1f} MiB): {', '.join(files)}")
    return 0
