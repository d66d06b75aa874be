"""`rsvlm data check <format> <annotation>`: the annotation checker's command line (see `rsvlm_zoo.data.check`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rsvlm_zoo.data.check import check_dataset
from rsvlm_zoo.data.readers import READERS
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


def data_main(argv: list[str] | None = None) -> int:
    """Run `rsvlm data check <format> <annotation> [--images DIR] [--split S] [--option k=v]`.

    Args:
        argv: Arguments after `data` (default: `sys.argv[1:]`).

    Returns:
        0 when no errors were found; 1 when the check found errors, or when the source cannot be read or an option
        value is not allowed (one line on stderr, `rsvlm data check: error: ...`, naming the file, the record and
        the reason); 2 for bad arguments (argparse).
    """
    parser = argparse.ArgumentParser(prog="rsvlm data", description="Annotation data tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="count samples/regions and report problems of an annotation source")
    check.add_argument("format", choices=sorted(READERS), help="annotation format")
    check.add_argument("annotation", help="annotation file or directory")
    check.add_argument("--images", default=None, help="image directory")
    check.add_argument("--split", default=None, help="split to check")
    check.add_argument("--option", action="append", type=_option, default=[], help="reader option key=value")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: 2 for bad arguments, 0 for --help
        return int(exit_.code or 0)
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
        print(f"rsvlm data check: error: {' '.join(str(err).split()) or type(err).__name__}", file=sys.stderr)
        return 1
    print(report.table())
    return 1 if report.errors else 0
