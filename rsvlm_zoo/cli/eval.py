"""`rsvlm eval`: score predictions again, from a run's own records or against a caption reference file.

Usage::

    rsvlm eval --predictions runs/x/eval/predictions_<set>.jsonl [--metrics exact_match,caption]
    rsvlm eval --predictions preds.jsonl --references refs.json [--output metrics.json]
               [--split test] [--spice [--corenlp-dir DIR]] [--tokenizer ptb|none] [--no-meteor]

Without `--references`, the predictions are the records `rsvlm test` (`<root>/eval/predictions_<set>.jsonl`) and
`rsvlm predict` (`<root>/predictions.jsonl`) write (`rsvlm_zoo.evaluation.records`): each line carries its
`answer` and `references`. They are scored per `eval_set` with `--metrics` (names as a model's `eval_metrics`,
default `caption`: the coco-caption suite), and `--output` holds `{set: {metric: score}}`, the shape and the
numbers of the run's own `metrics.json` when the same metrics are asked for.

Predictions (`--predictions`) are JSON Lines, one object per image::

    {"image_id": 318, "caption": "many planes are parked next to a long building"}
    {"image_id": "airport_62.jpg", "prediction": "a runway in a field"}

The image is named by `image_id` (aliases: `imgid`, `filename`, `file_name`, `id`), either by its id
(integer or digits) or by its file name; the text is under `caption` (aliases: `prediction`, `answer`).
Blank lines are skipped; one prediction per image.

References (`--references`) are either a COCO caption file (`{"images": [{"id", "file_name"}...],
"annotations": [{"image_id", "caption"}...]}`, matched by `images[].id` or `file_name`) or a Karpathy file
(`{"images": [{"imgid", "filename", "split", "sentences": [{"raw"}...]}...]}`, matched by `imgid` or
`filename`, restricted to `--split`, default `test`, "all" for every image). Only the predicted images are
scored; a prediction whose image has no reference is an error naming its line.

The table of scores is printed and the scores are written as a flat strict-JSON object (`Bleu_1`..`Bleu_4`,
`METEOR`, `ROUGE_L`, `CIDEr`, optional `SPICE`) to `--output` (default `metrics.json`). A score that is undefined
(NaN or infinite, e.g. a metric over no comparable text) is written as `null` and printed as `n/a`, never as
the non-standard `NaN`. Both input files must be UTF-8; a byte that is not is reported with its offset.

Exit status: 0 on success; 1 when the inputs cannot be scored or the output cannot be written (one line on
stderr, `rsvlm eval: error: ...`, naming the file, the line or record and the reason); 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rsvlm_zoo.evaluation.answer_metrics import KNOWN, build_answer_metrics, score_records
from rsvlm_zoo.evaluation.records import RecordFileError, read_records
from rsvlm_zoo.evaluation.writers import markdown_table, strict_json
from rsvlm_zoo.metrics.caption_io import (
    CaptionDataError,
    load_predictions,
    load_references,
    match_predictions,
)
from rsvlm_zoo.metrics.java import JavaNotFoundError
from rsvlm_zoo.metrics.spice_scorer import SPICE_ENV, SpiceModelsNotFoundError

T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    """The `rsvlm eval` argument parser."""
    parser = argparse.ArgumentParser(
        prog="rsvlm eval",
        description="Score caption predictions with BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (and SPICE), "
        "numbers identical to coco-caption (pycocoevalcap).",
    )
    parser.add_argument("--predictions", required=True, type=Path, help="JSON Lines: {image_id, caption} per line")
    parser.add_argument(
        "--references", type=Path, default=None, help="COCO caption or Karpathy JSON (default: the records' own)"
    )
    parser.add_argument(
        "--metrics",
        type=_metric_names,
        default=("caption",),
        help=f"comma-separated metrics for records ({', '.join(KNOWN)}); default caption",
    )
    parser.add_argument("--output", type=Path, default=Path("metrics.json"), help="metrics JSON to write")
    parser.add_argument("--split", default="test", help="Karpathy split to use ('all': every image)")
    parser.add_argument("--spice", action="store_true", help="also compute SPICE (needs CoreNLP 3.6.0 jars)")
    parser.add_argument("--corenlp-dir", type=Path, default=None, help=f"CoreNLP jars folder (or ${SPICE_ENV})")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR")
    parser.add_argument("--tokenizer", choices=("ptb", "none"), default="ptb", help="ptb: as coco-caption")
    return parser


def _metric_names(text: str) -> tuple[str, ...]:
    """`--metrics a,b`: known metric names (argparse type)."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in KNOWN]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown metric(s) {unknown or text!r}; known: {', '.join(KNOWN)}")
    return names


def format_table(scores: dict[str, float | None], num_images: int) -> str:
    """A two-column text table of the scores (`n/a` for an undefined one)."""
    width = max(len(k) for k in [*scores, "metric"])
    lines = [f"{'metric':<{width}}  score", f"{'-' * width}  {'-' * 6}"]
    lines += [f"{k:<{width}}  {'n/a' if v is None else f'{v:.4f}'}" for k, v in scores.items()]
    lines.append(f"({num_images} images)")
    return "\n".join(lines)


def finite_or_none(value: Any) -> float | None:
    """A score as a float, or None when it is undefined (NaN or infinite), so the JSON stays strict."""
    number = float(value)
    return number if math.isfinite(number) else None


def not_utf8_message(path: Path, err: UnicodeDecodeError) -> str:
    """`path`: which byte is not UTF-8, at which offset, line and column."""
    raw = err.object if isinstance(err.object, (bytes, bytearray)) else b""
    line = raw.count(b"\n", 0, err.start) + 1
    column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
    byte = f"byte {raw[err.start]:#04x}" if err.start < len(raw) else "a byte"
    return (
        f"{path}: {byte} at offset {err.start} (line {line}, column {column}) is not UTF-8; "
        "re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
    )


def _read(path: Path, what: str, read: Callable[[], T]) -> T:
    """`read()` with every way a hostile file can make it fail turned into a `CaptionDataError` naming `path`."""
    try:
        return read()
    except CaptionDataError:
        raise
    except UnicodeDecodeError as err:
        raise CaptionDataError(not_utf8_message(path, err)) from err
    except RecursionError as err:
        raise CaptionDataError(f"{path}: JSON nested too deeply to read") from err
    except (OSError, ValueError) as err:
        raise CaptionDataError(f"cannot read {what} {path}: {err}") from err
    except (KeyError, TypeError, AttributeError, IndexError) as err:
        detail = f"{type(err).__name__}: {err}"
        raise CaptionDataError(f"{path}: not a usable {what} file, a record is of another shape ({detail})") from err


def _check_reference_texts(path: Path, predictions: list[tuple[int, Any, str]], target: list[list[Any]]) -> None:
    """Every predicted image has at least one reference, and all of them are strings."""
    for (_, image_id, _), texts in zip(predictions, target, strict=True):
        bad = next((t for t in texts if not isinstance(t, str)), None)
        if bad is not None or not texts:
            found = f"{type(bad).__name__} {str(bad)[:40]!r}" if texts else "none"
            raise CaptionDataError(f"{path}: image {image_id!r}: reference captions must be strings, found {found}")


def eval_main(argv: list[str] | None = None) -> int:
    """Run `rsvlm eval` with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: 2 for bad arguments, 0 for --help
        return int(exit_.code or 0)
    if args.output.is_dir():
        print(f"rsvlm eval: error: --output {args.output} is a directory; give the JSON file to write", file=sys.stderr)
        return 1
    from rsvlm_zoo.metrics.caption import CaptionMetrics

    if args.references is None:
        return _eval_records(args)
    if args.metrics != ("caption",):
        print(
            "rsvlm eval: error: --metrics scores records; with --references the caption suite is used", file=sys.stderr
        )
        return 2
    try:
        refs = _read(args.references, "references", lambda: load_references(args.references, split=args.split))
        predictions = _read(args.predictions, "predictions", lambda: load_predictions(args.predictions))
        preds, target = _read(
            args.predictions,
            "predictions",
            lambda: match_predictions(predictions, refs, args.predictions, args.split),
        )
        _check_reference_texts(args.references, predictions, target)
        metric = CaptionMetrics(
            meteor=not args.no_meteor,
            spice=args.spice,
            corenlp_dir=args.corenlp_dir,
            tokenizer=args.tokenizer,
        )
        try:
            metric.update(preds, target)
            scores = {k: finite_or_none(v) for k, v in metric.compute().items()}
        finally:
            metric.close()
    except (CaptionDataError, JavaNotFoundError, SpiceModelsNotFoundError) as exc:
        print(f"rsvlm eval: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(format_table(scores, len(preds)))
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(scores, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    except OSError as err:
        print(f"rsvlm eval: error: cannot write {args.output}: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}")
    return 0


def _records_metrics(args: argparse.Namespace) -> dict[str, Any]:
    """Fresh metric objects for one evaluation set; `caption` takes the command's caption options."""
    from rsvlm_zoo.metrics.caption import CaptionMetrics

    built = build_answer_metrics([n for n in args.metrics if n != "caption"])
    if "caption" in args.metrics:
        built["caption"] = CaptionMetrics(
            meteor=not args.no_meteor, spice=args.spice, corenlp_dir=args.corenlp_dir, tokenizer=args.tokenizer
        )
    return {name: built[name] for name in args.metrics}


def _eval_records(args: argparse.Namespace) -> int:
    """Score a run's own prediction records per evaluation set; write `{set: {metric: score}}`."""
    try:
        records = read_records(args.predictions)
        results = score_records(records, lambda: _records_metrics(args))
    except (RecordFileError, JavaNotFoundError, SpiceModelsNotFoundError) as exc:
        print(f"rsvlm eval: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(markdown_table(results) + f"({len(records)} records)")
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(strict_json(results, indent=2) + "\n", encoding="utf-8")
    except OSError as err:
        print(f"rsvlm eval: error: cannot write {args.output}: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(eval_main())
