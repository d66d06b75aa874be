"""`rsvlm eval`: score caption predictions against references with the coco-caption suite.

Usage::

    rsvlm eval --predictions preds.jsonl --references refs.json [--output metrics.json]
               [--split test] [--spice [--corenlp-dir DIR]] [--tokenizer ptb|none] [--no-meteor]

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

The table of scores is printed and the scores are written as a flat JSON object (`Bleu_1`..`Bleu_4`, `METEOR`,
`ROUGE_L`, `CIDEr`, optional `SPICE`) to `--output` (default `metrics.json`). Exit status: 0 on success,
1 when the inputs cannot be scored (the reason is printed), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rsvlm_zoo.metrics.caption_io import (
    CaptionDataError,
    load_predictions,
    load_references,
    match_predictions,
)
from rsvlm_zoo.metrics.java import JavaNotFoundError
from rsvlm_zoo.metrics.spice_scorer import SPICE_ENV, SpiceModelsNotFoundError


def build_parser() -> argparse.ArgumentParser:
    """The `rsvlm eval` argument parser."""
    parser = argparse.ArgumentParser(
        prog="rsvlm eval",
        description="Score caption predictions with BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (and SPICE), "
        "numbers identical to coco-caption (pycocoevalcap).",
    )
    parser.add_argument("--predictions", required=True, type=Path, help="JSON Lines: {image_id, caption} per line")
    parser.add_argument("--references", required=True, type=Path, help="COCO caption JSON or Karpathy JSON")
    parser.add_argument("--output", type=Path, default=Path("metrics.json"), help="metrics JSON to write")
    parser.add_argument("--split", default="test", help="Karpathy split to use ('all': every image)")
    parser.add_argument("--spice", action="store_true", help="also compute SPICE (needs CoreNLP 3.6.0 jars)")
    parser.add_argument("--corenlp-dir", type=Path, default=None, help=f"CoreNLP jars folder (or ${SPICE_ENV})")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR")
    parser.add_argument("--tokenizer", choices=("ptb", "none"), default="ptb", help="ptb: as coco-caption")
    return parser


def format_table(scores: dict[str, float], num_images: int) -> str:
    """A two-column text table of the scores."""
    width = max(len(k) for k in [*scores, "metric"])
    lines = [f"{'metric':<{width}}  score", f"{'-' * width}  {'-' * 6}"]
    lines += [f"{k:<{width}}  {v:.4f}" for k, v in scores.items()]
    lines.append(f"({num_images} images)")
    return "\n".join(lines)


def eval_main(argv: list[str] | None = None) -> int:
    """Run `rsvlm eval` with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    args = build_parser().parse_args(argv)
    from rsvlm_zoo.metrics.caption import CaptionMetrics

    try:
        refs = load_references(args.references, split=args.split)
        preds, target = match_predictions(load_predictions(args.predictions), refs, args.predictions, args.split)
        metric = CaptionMetrics(
            meteor=not args.no_meteor,
            spice=args.spice,
            corenlp_dir=args.corenlp_dir,
            tokenizer=args.tokenizer,
        )
        try:
            metric.update(preds, target)
            scores = {k: float(v) for k, v in metric.compute().items()}
        finally:
            metric.close()
    except (CaptionDataError, JavaNotFoundError, SpiceModelsNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_table(scores, len(preds)))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(scores, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(eval_main())
