"""`rsvlm eval`: score predictions again, from a run's own records, against a caption reference file, or per task.

Over 300 lines only through the usage text below; the code is about 260 lines.

Usage::

    rsvlm eval --predictions runs/x/eval/predictions_<set>.jsonl [--metrics exact_match,caption]
    rsvlm eval --predictions preds.jsonl --references refs.json [--output metrics.json]
               [--split test] [--spice [--corenlp-dir DIR]] [--tokenizer ptb|none] [--no-meteor]
    rsvlm eval --task grounding|refcls|regioncap|description --predictions preds.jsonl --references refs.json
               [--box-format geochat|qwen|pixels|norm1|norm1000] [--bootstrap N [--seed S]] [--allow-missing]
               [--output metrics.json] [caption options for regioncap/description]

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

Region tasks (`--task`). Predictions are JSON Lines of `{"sample_id", "answer"}` (the records `rsvlm test` and
`rsvlm predict` write carry both and are accepted as they are; other keys are ignored). References are a JSON list
of records, as `rsvlm data refs` writes them:

- `grounding`: `{"sample_id", "width", "height", "box": [x1, y1, x2, y2], "angle"?}`, the box in pixels of the
  image; `angle` (degrees) makes it a rotated box: the box turned about its centre, a positive angle turning the
  x axis toward the y axis (clockwise on screen), as GeoChat writes `{<x1><y1><x2><y2>|<θ>}`
  (`rsvlm_zoo.metrics.grounding` gives the convention and the exact polygon IoU).
- `refcls`, `regioncap`, `description`: `{"sample_id", "references": [str, ...]}`.

Sample ids are strings or integers, matched on their text. `grounding` reads the first box of each answer written
as `--box-format` says (default `geochat`): `geochat` `{<x1><y1><x2><y2>}` or `{<x1><y1><x2><y2>|<θ>}` on a 0-100
grid; `qwen` Qwen-VL's `<box>(x1,y1),(x2,y2)</box>` on 0-1000; `pixels` `[x1, y1, x2, y2]`; `norm1` the same in
0-1; `norm1000` the same in 0-1000 (the bracketed forms take a fifth number, the angle). Grid and normalised
values are turned into pixels with the reference's width and height before any IoU, so a rotated box keeps its
shape on a non-square image. An answer with no box, or whose first box is out of range (outside the grid, or
outside the image for `pixels`) or inverted, is a miss: IoU 0, and counted in `unparsed`. The scores are
`acc@0.25`, `acc@0.5`, `acc@0.75` (the share of samples with IoU at least that), `miou` (mean IoU), `ciou`
(summed intersections over summed unions) and `unparsed` (a count of samples, not a share). `refcls` gives
Osprey's `semantic_similarity` (all-MiniLM-L6-v2 cosine; needs `pip install 'rsvlm_zoo[semantic]'`) and
`semantic_iou` (word-set Jaccard); `regioncap` and `description` give the caption suite (Bleu_1..4, METEOR,
ROUGE_L, CIDEr, optional SPICE) with `--no-meteor`, `--spice`, `--corenlp-dir` and `--tokenizer`. The output
also holds `samples` and `missing_predictions`.

`--bootstrap N` (grounding and refcls) adds a 95% percentile interval to every score but `unparsed`: the samples
are resampled with replacement N times (numpy `default_rng(--seed)`, default seed 0, so the same seed gives the
same intervals), each score is recomputed exactly from the per-sample values (IoU, intersection and union;
per-sample semantic scores), and the 2.5th and 97.5th percentiles are written as `"<score>_ci95": [low, high]`,
e.g. `{"acc@0.5": 0.41, "acc@0.5_ci95": [0.37, 0.45], ..., "bootstrap_resamples": 1000, "bootstrap_seed": 0}`.
The caption tasks refuse `--bootstrap` (exit 2): BLEU, METEOR and CIDEr are corpus-level scores, so an exact
interval would rescore the whole suite once per resample.

Every reference needs a prediction and every prediction a reference: an id on one side only is an error naming
the ids and the file. `--allow-missing` scores a reference without prediction as a miss (grounding: IoU 0 and
`unparsed`; text tasks: an empty answer) and reports how many (`missing_predictions`); a prediction without
reference stays an error. A sample id given twice is an error naming both lines (predictions) or records
(references, counted from 1).

Exit status: 0 on success; 1 when the inputs cannot be scored or the output cannot be written (one line on
stderr, `rsvlm eval: error: ...`, naming the file, the line or record and the reason); 2 for bad arguments.

"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rsvlm_zoo.cli.eval_task import eval_task
from rsvlm_zoo.data.box_codec import ANSWER_FORMATS
from rsvlm_zoo.evaluation.answer_metrics import KNOWN, build_answer_metrics, score_records
from rsvlm_zoo.evaluation.records import RecordFileError, read_records
from rsvlm_zoo.evaluation.region_tasks import TASKS
from rsvlm_zoo.evaluation.writers import markdown_table, strict_json
from rsvlm_zoo.metrics.caption_io import (
    CaptionDataError,
    load_predictions,
    load_references,
    match_predictions,
)
from rsvlm_zoo.metrics.java import JavaNotFoundError
from rsvlm_zoo.metrics.spice_scorer import SPICE_ENV, SpiceModelsNotFoundError
from rsvlm_zoo.progress import Steps

T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    """The `rsvlm eval` argument parser."""
    parser = argparse.ArgumentParser(
        prog="rsvlm eval",
        description="Score caption predictions with BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (and SPICE), "
        "numbers identical to coco-caption (pycocoevalcap); or, with --task, region-task answers (grounding "
        "boxes, referring classification, region captions) against a references list.",
    )
    parser.add_argument(
        "--predictions",
        required=True,
        type=Path,
        help="JSON Lines: {image_id, caption} per line, or {sample_id, answer} with --task",
    )
    parser.add_argument(
        "--references", type=Path, default=None, help="COCO caption or Karpathy JSON (default: the records' own)"
    )
    parser.add_argument(
        "--metrics",
        type=_metric_names,
        default=("caption",),
        help=f"comma-separated metrics for records ({', '.join(KNOWN)}); default caption",
    )
    parser.add_argument(
        "--out",
        "--output",
        dest="output",
        type=Path,
        default=Path("metrics.json"),
        help="metrics JSON to write (--out as in the other commands; --output is the same flag)",
    )
    parser.add_argument("--split", default="test", help="Karpathy split to use ('all': every image)")
    parser.add_argument("--spice", action="store_true", help="also compute SPICE (needs CoreNLP 3.6.0 jars)")
    parser.add_argument("--corenlp-dir", type=Path, default=None, help=f"CoreNLP jars folder (or ${SPICE_ENV})")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR")
    parser.add_argument("--tokenizer", choices=("ptb", "none"), default="ptb", help="ptb: as coco-caption")
    task = parser.add_argument_group("region tasks (--task)")
    task.add_argument(
        "--task", choices=TASKS, default=None, help="score {sample_id, answer} predictions against a references list"
    )
    task.add_argument(
        "--box-format",
        choices=tuple(ANSWER_FORMATS),
        default=None,
        help="grounding: how answers write boxes (default geochat: {<x1><y1><x2><y2>|<angle>} on 0-100)",
    )
    task.add_argument(
        "--bootstrap",
        type=_count,
        default=0,
        metavar="N",
        help="grounding/refcls: add 95%% percentile intervals from N resamples of the samples",
    )
    task.add_argument("--seed", type=int, default=None, help="bootstrap seed (default 0)")
    task.add_argument(
        "--allow-missing",
        action="store_true",
        help="score a reference without prediction as a miss (grounding) or an empty answer (text tasks)",
    )
    return parser


def _count(text: str) -> int:
    """A non-negative integer (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


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


def _write_scores(path: Path, scores: dict[str, Any]) -> int:
    """Write `scores` as strict JSON (non-finite values become null) to `path`; the exit status."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(strict_json(scores, indent=2) + "\n", encoding="utf-8")
    except OSError as err:
        print(f"rsvlm eval: error: cannot write {path}: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


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

    if args.task is not None:
        return eval_task(args, _write_scores)
    task_only = [
        flag
        for flag, given in (
            ("--box-format", args.box_format is not None),
            ("--bootstrap", bool(args.bootstrap)),
            ("--seed", args.seed is not None),
            ("--allow-missing", args.allow_missing),
        )
        if given
    ]
    if task_only:
        print(f"rsvlm eval: error: {', '.join(task_only)} go(es) with --task; add --task TASK", file=sys.stderr)
        return 2
    if args.references is None:
        return _eval_records(args)
    if args.metrics != ("caption",):
        print(
            "rsvlm eval: error: --metrics scores records; with --references the caption suite is used", file=sys.stderr
        )
        return 2
    try:
        with Steps("eval", 3) as step:
            step("read")
            refs = _read(args.references, "references", lambda: load_references(args.references, split=args.split))
            predictions = _read(args.predictions, "predictions", lambda: load_predictions(args.predictions))
            step("match")
            preds, target = _read(
                args.predictions,
                "predictions",
                lambda: match_predictions(predictions, refs, args.predictions, args.split),
            )
            _check_reference_texts(args.references, predictions, target)
            suite = ["BLEU", "ROUGE-L", "CIDEr-D"] + ["METEOR"] * (not args.no_meteor) + ["SPICE"] * bool(args.spice)
            step(f"score ({', '.join(suite)})")
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
    return _write_scores(args.output, scores)


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
        with Steps("eval", 2) as step:
            step("read")
            records = read_records(args.predictions)
            step(f"score ({', '.join(args.metrics)})")
            results = score_records(records, lambda: _records_metrics(args))
    except (RecordFileError, JavaNotFoundError, SpiceModelsNotFoundError) as exc:
        print(f"rsvlm eval: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(markdown_table(results) + f"({len(records)} records)")
    return _write_scores(args.output, results)


if __name__ == "__main__":
    sys.exit(eval_main())
