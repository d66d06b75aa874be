"""One record per generated answer: what a prediction file line holds and what the harness scores.

The schema is written (`prediction_records`, by `rsvlm test` and `rsvlm predict`) and read (`read_records`, by
`rsvlm eval`) here only: `{sample_id, eval_set, prompt, answer, references}`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from rsvlm_zoo.batch import Batch
from rsvlm_zoo.tokens import IMAGE_TOKEN


def prompt_text(input_ids: list[int], tokenizer: PreTrainedTokenizerBase) -> str:
    """The prompt as text: padding and BOS/EOS dropped, each run of `<image>` tokens written once."""
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    drop = {tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id} - {None}
    kept: list[int] = []
    for i in input_ids:
        if i in drop or (i == image_id and kept and kept[-1] == image_id):
            continue
        kept.append(i)
    return tokenizer.decode(kept, skip_special_tokens=False).strip()


def prediction_records(batch: Batch, answers: list[str], tokenizer: PreTrainedTokenizerBase) -> list[dict]:
    """Records `{sample_id, eval_set, prompt, answer, references}` for a generation batch and its answers."""
    metas = batch.get("meta") or [{} for _ in answers]
    references = batch.get("references") or [[a] for a in batch.get("answers", [""] * len(answers))]
    ids = batch["input_ids"].tolist()
    return [
        {
            "sample_id": meta.get("sample_id"),
            "eval_set": meta.get("eval_name"),
            "prompt": prompt_text(row, tokenizer),
            "answer": answer,
            "references": list(refs),
        }
        for row, answer, meta, refs in zip(ids, answers, metas, references, strict=True)
    ]


RECORD_KEYS = ("sample_id", "eval_set", "prompt", "answer", "references")


class RecordFileError(ValueError):
    """A predictions file whose lines are not records of this schema; the message names the file and line."""


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a predictions file written by `rsvlm test` (`predictions_<set>.jsonl`) or `rsvlm predict`.

    Every non-blank line must be a JSON object with a string `answer` and `references`, a list of strings (at
    least one); `sample_id`, `eval_set` and `prompt` are kept as written.

    Raises:
        RecordFileError: naming the file, the line and what it lacks.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RecordFileError(f"cannot read predictions {path}: {err}") from err
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as err:
            raise RecordFileError(f"{path}:{number}: not a JSON record ({err})") from err
        if not isinstance(record, dict):
            raise RecordFileError(f"{path}:{number}: expected a JSON object with {', '.join(RECORD_KEYS)}")
        if not isinstance(record.get("answer"), str):
            raise RecordFileError(f"{path}:{number}: no `answer` string; records carry {', '.join(RECORD_KEYS)}")
        refs = record.get("references")
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise RecordFileError(
                f"{path}:{number}: `references` must be a non-empty list of strings (got {str(refs)[:60]}); "
                "score a file without references with --references"
            )
        records.append(record)
    if not records:
        raise RecordFileError(f"{path}: holds no records")
    return records


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
