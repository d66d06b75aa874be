"""`rsvlm eval --task grounding|refcls|regioncap|description`: region-task answers against a references list.

Reading and matching are `rsvlm_zoo.evaluation.region_tasks`, scoring `rsvlm_zoo.evaluation.task_scores`; this
module checks the arguments that go with `--task`, runs the steps and prints the table (with 95% intervals
when `--bootstrap` is given).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rsvlm_zoo.evaluation.region_tasks import BOOTSTRAP_TASKS, CI_SUFFIX
from rsvlm_zoo.metrics.java import JavaNotFoundError
from rsvlm_zoo.metrics.spice_scorer import SpiceModelsNotFoundError
from rsvlm_zoo.progress import Steps


def _task_argument_error(args: argparse.Namespace) -> str | None:
    """Why the `--task` arguments cannot go together, or None."""
    if args.references is None:
        return f"--task {args.task} needs --references, the JSON list of reference records (`rsvlm data refs`)"
    if args.metrics != ("caption",):
        return "--metrics scores a run's records; with --task the task decides the metrics"
    if args.box_format is not None and args.task != "grounding":
        return f"--box-format is for --task grounding, not {args.task}"
    if args.bootstrap and args.task not in BOOTSTRAP_TASKS:
        return (
            f"--bootstrap is for --task {' and '.join(BOOTSTRAP_TASKS)}: the caption suite of --task {args.task} "
            "has corpus-level scores (BLEU, METEOR, CIDEr), which cannot be resampled per sample; drop --bootstrap"
        )
    return None


def format_task_table(scores: dict[str, Any], num_samples: int, missing: int, task: str) -> str:
    """A text table of the scores of `--task`, with the 95% interval column when there is one."""
    names = [k for k in scores if not k.endswith(CI_SUFFIX) and k not in ("samples", "missing_predictions")]
    names = [k for k in names if not k.startswith("bootstrap_")]
    label = {"unparsed": "unparsed (count)"}
    width = max(len(label.get(k, k)) for k in [*names, "metric"])
    with_ci = any(k.endswith(CI_SUFFIX) for k in scores)
    lines = [f"{'metric':<{width}}  {'score':>8}" + ("  95% CI" if with_ci else "")]
    lines.append(f"{'-' * width}  {'-' * 8}" + ("  " + "-" * 17 if with_ci else ""))
    for name in names:
        value = scores[name]
        text = "n/a" if value is None else (str(value) if isinstance(value, int) else f"{value:.4f}")
        row = f"{label.get(name, name):<{width}}  {text:>8}"
        interval = scores.get(name + CI_SUFFIX)
        if interval is not None:
            row += f"  [{interval[0]:.4f}, {interval[1]:.4f}]"
        lines.append(row)
    tail = f"({num_samples} samples, --task {task}"
    tail += f"; {missing} without prediction, scored as misses)" if missing else ")"
    lines.append(tail)
    return "\n".join(lines)


def _score_task(args: argparse.Namespace, scorer: Any, matched: Any, seed: int) -> dict[str, Any]:
    """The scores of `--task` on the matched predictions (`scorer`: `rsvlm_zoo.evaluation.task_scores`)."""
    if args.task == "grounding":
        return scorer.score_grounding(matched, args.box_format or "geochat", args.bootstrap, seed)[0]
    if args.task == "refcls":
        return scorer.score_refcls(matched, args.bootstrap, seed)
    return scorer.score_captions(
        matched, meteor=not args.no_meteor, spice=args.spice, corenlp_dir=args.corenlp_dir, tokenizer=args.tokenizer
    )


def eval_task(args: argparse.Namespace, write: Callable[[Path, dict[str, Any]], int]) -> int:
    """`--task`: score {sample_id, answer} predictions against a references list; `write` the flat scores."""
    from rsvlm_zoo.evaluation import region_tasks as rt
    from rsvlm_zoo.evaluation import task_scores

    problem = _task_argument_error(args)
    if problem:
        print(f"rsvlm eval: error: {problem}", file=sys.stderr)
        return 2
    seed = 0 if args.seed is None else args.seed
    try:
        with Steps("eval", 3) as step:
            step("read")
            predictions = rt.load_predictions(args.predictions)
            references = rt.load_references(args.references, args.task)
            step("match")
            matched = rt.match(predictions, references, args.predictions, args.references, args.allow_missing)
            step(f"score {args.task}")
            scores = _score_task(args, task_scores, matched, seed)
    except (rt.TaskInputError, JavaNotFoundError, SpiceModelsNotFoundError, ModuleNotFoundError) as exc:
        print(f"rsvlm eval: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    scores["samples"] = len(matched.references)
    scores["missing_predictions"] = matched.missing
    if args.bootstrap:
        scores["bootstrap_resamples"] = args.bootstrap
        scores["bootstrap_seed"] = seed
    print(format_task_table(scores, len(matched.references), matched.missing, args.task))
    return write(args.output, scores)
