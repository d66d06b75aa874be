"""Region-task inputs for `rsvlm eval --task`: predictions and references read, checked and matched.

The matched answers are scored by `rsvlm_zoo.evaluation.task_scores`.

Inputs:

- predictions: JSON Lines, one `{"sample_id", "answer"}` object per line (other keys, such as those of
  `rsvlm_zoo.evaluation.records`, are ignored; blank lines are skipped);
- references: a JSON list of records, as `rsvlm data refs` writes them. Grounding:
  `{"sample_id", "width", "height", "box": [x1, y1, x2, y2], "angle"?}` (pixels; `angle` in degrees for a rotated
  box, the convention of `rsvlm_zoo.metrics.grounding`); text tasks: `{"sample_id", "references": [str, ...]}`.
  Other keys (`image`, `expression`) are ignored.

A sample id is a string or an integer; the two files are matched on its text, so `7` and `"7"` are the same
sample. Every problem raises `TaskInputError`, whose message names the file, the line (predictions) or the record
(references, counted from 1) and the fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TASKS = ("grounding", "refcls", "regioncap", "description")
CAPTION_TASKS = ("regioncap", "description")
BOOTSTRAP_TASKS = ("grounding", "refcls")
CI_SUFFIX = "_ci95"
_SHOWN_IDS = 5  # ids named in a missing/extra message before "and N more"


class TaskInputError(ValueError):
    """A predictions or references file that cannot be scored; the message names the file, the record and the fix."""


@dataclass
class Matched:
    """References in file order with the answer given for each.

    Attributes:
        references: The reference records, in the references file's order.
        answers: The answer for each reference; None where the prediction is missing (only with allow_missing).
        missing: How many predictions are missing.
    """

    references: list[dict[str, Any]]
    answers: list[str | None]
    missing: int


def _read_text(path: Path, what: str) -> str:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise TaskInputError(f"cannot read {what} {path}: {err.strerror or err}; check the path") from err
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise TaskInputError(
            f"{path}: byte {raw[err.start]:#04x} at offset {err.start} (line {line}) is not UTF-8; "
            "re-encode the file as UTF-8"
        ) from err


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _sample_key(value: Any) -> str | None:
    """The matching key of a sample id: the text of a string or integer id; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value)


def _ids(keys: Sequence[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOWN_IDS])
    return shown + (f" and {len(keys) - _SHOWN_IDS} more" if len(keys) > _SHOWN_IDS else "")


def load_predictions(path: Path) -> dict[str, tuple[int, str]]:
    """`{sample id: (line number, answer)}` of a predictions JSONL file.

    Raises:
        TaskInputError: unreadable or non-UTF-8 file, a line that is not a JSON object, no usable `sample_id` or
            `answer` string, a sample id given twice (both lines named), or no prediction at all.
    """
    text = _read_text(path, "predictions")
    out: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as err:
            raise TaskInputError(
                f"{where}: not a JSON object ({err}); write one {{sample_id, answer}} per line"
            ) from err
        if not isinstance(record, dict):
            raise TaskInputError(f"{where}: expected a JSON object {{sample_id, answer}}, got {type(record).__name__}")
        key = _sample_key(record.get("sample_id"))
        if key is None:
            found = "none" if record.get("sample_id") is None else repr(record["sample_id"])[:40]
            raise TaskInputError(f"{where}: `sample_id` must be a string or an integer (found {found}); add the id")
        answer = record.get("answer")
        if not isinstance(answer, str):
            raise TaskInputError(f"{where}: sample {key!r} has no `answer` string; write the generated text there")
        if key in out:
            raise TaskInputError(
                f"{where}: sample {key!r} was already predicted on line {out[key][0]}; keep one prediction per sample"
            )
        out[key] = (number, answer)
    if not out:
        raise TaskInputError(f"{path}: holds no predictions; write one {{sample_id, answer}} JSON object per line")
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _check_grounding(record: dict[str, Any], where: str) -> None:
    for side in ("width", "height"):
        size = _number(record.get(side))
        if size is None or size <= 0:
            raise TaskInputError(f"{where}: `{side}` must be a positive number of pixels (found {record.get(side)!r})")
    box = record.get("box")
    values = [_number(v) for v in box] if isinstance(box, list) else []
    if len(values) != 4 or any(v is None for v in values):
        raise TaskInputError(f"{where}: `box` must be [x1, y1, x2, y2], four numbers in pixels (found {box!r:.60})")
    x1, y1, x2, y2 = values
    if x2 < x1 or y2 < y1:  # type: ignore[operator]
        raise TaskInputError(f"{where}: `box` {box} is inverted; write [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2")
    if record.get("angle") is not None and _number(record["angle"]) is None:
        raise TaskInputError(f"{where}: `angle` must be a number of degrees (found {record['angle']!r:.40})")


def _check_texts(record: dict[str, Any], where: str) -> None:
    refs = record.get("references")
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
        raise TaskInputError(f"{where}: `references` must be a non-empty list of strings (found {refs!r:.60})")


def load_references(path: Path, task: str) -> list[dict[str, Any]]:
    """The reference records of `task` from a JSON list, each checked; `sample_id` normalised to its text.

    Raises:
        TaskInputError: unreadable file, not a JSON list, a record of the wrong shape, a duplicate sample id (both
            records named), or an empty list.
    """
    text = _read_text(path, "references")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as err:
        raise TaskInputError(f"{path}: not valid JSON ({err}); give the list `rsvlm data refs` writes") from err
    if not isinstance(data, list):
        raise TaskInputError(f"{path}: expected a JSON list of reference records, got {type(data).__name__}")
    if not data:
        raise TaskInputError(f"{path}: holds no reference records")
    check = _check_grounding if task == "grounding" else _check_texts
    seen: dict[str, int] = {}
    out = []
    for index, record in enumerate(data, start=1):
        where = f"{path}: record {index}"
        if not isinstance(record, dict):
            raise TaskInputError(f"{where}: expected a JSON object, got {type(record).__name__}")
        key = _sample_key(record.get("sample_id"))
        if key is None:
            raise TaskInputError(
                f"{where}: `sample_id` must be a string or an integer (found {record.get('sample_id')!r:.40})"
            )
        where = f"{where} (sample_id {key!r})"
        check(record, where)
        if key in seen:
            raise TaskInputError(f"{where}: repeats the sample id of record {seen[key]}; sample ids must be unique")
        seen[key] = index
        out.append({**record, "sample_id": key})
    return out


def match(
    predictions: dict[str, tuple[int, str]],
    references: list[dict[str, Any]],
    predictions_path: Path,
    references_path: Path,
    allow_missing: bool = False,
) -> Matched:
    """Pair each reference with its prediction.

    Raises:
        TaskInputError: predictions whose id has no reference (always: they cannot be scored), or references
            without a prediction unless `allow_missing`.
    """
    ref_keys = {r["sample_id"] for r in references}
    extra = sorted((line, key) for key, (line, _) in predictions.items() if key not in ref_keys)
    if extra:
        raise TaskInputError(
            f"{predictions_path}: {len(extra)} prediction(s) have no reference in {references_path}: "
            f"{_ids([k for _, k in extra])} (first on line {extra[0][0]}); remove them or score against the "
            "references of the same split"
        )
    missing = [r["sample_id"] for r in references if r["sample_id"] not in predictions]
    if missing and not allow_missing:
        raise TaskInputError(
            f"{predictions_path}: no prediction for {len(missing)} of the {len(references)} samples of "
            f"{references_path}: {_ids(missing)}; predict them, or pass --allow-missing to score them as misses"
        )
    answers = [predictions[r["sample_id"]][1] if r["sample_id"] in predictions else None for r in references]
    return Matched(references, answers, len(missing))
