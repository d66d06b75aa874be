"""One record per generated answer: what a prediction file line holds and what the harness scores."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

from rsvlm_zoo.tokenizer import IMAGE_TOKEN


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


def prediction_records(batch: dict[str, Any], answers: list[str], tokenizer: PreTrainedTokenizerBase) -> list[dict]:
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
