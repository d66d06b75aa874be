"""Karpathy caption files (RSICD, UCM, Sydney, RSITMD): one reading of their image records.

The data layer reads them as training samples (`rsvlm_zoo.data.readers.captions`) and the metrics as scoring
references (`rsvlm_zoo.metrics.caption_io`); both take an image's captions, id and split from here, so a file
scores against exactly the captions it trains on. This module imports nothing of the package.
"""

from __future__ import annotations

from typing import Any


def is_karpathy(data: Any) -> bool:
    """Whether `data` (a parsed JSON file) is a Karpathy file: an `images` list whose records hold `sentences`."""
    images = data.get("images") if isinstance(data, dict) else None
    return (
        bool(images) and isinstance(images, list) and all(isinstance(r, dict) and "sentences" in r for r in images[:10])
    )


def karpathy_captions(record: dict[str, Any]) -> list[str]:
    """The captions of one image record: each sentence's `raw` text as written (dataset typos kept).

    A sentence without `raw` gives its `tokens` joined by spaces (some files keep only the tokens).

    Raises:
        KeyError: the record has no `sentences`.
        ValueError: naming the sentence that is neither, or an image without sentences.
    """
    sentences = record["sentences"]
    if not isinstance(sentences, list):
        raise ValueError(f"sentences must be a list, got {type(sentences).__name__}")
    captions = []
    for k, sentence in enumerate(sentences):
        raw = sentence.get("raw") if isinstance(sentence, dict) else None
        tokens = sentence.get("tokens") if isinstance(sentence, dict) else None
        if isinstance(raw, str):
            captions.append(raw)
        elif isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
            captions.append(" ".join(tokens))
        else:
            raise ValueError(f"sentences[{k}] has no raw caption string (nor a tokens list): {str(sentence)[:60]!r}")
    if not captions:
        raise ValueError("the image has no sentences; add captions or remove it")
    return captions


def karpathy_image_id(record: dict[str, Any]) -> str:
    """The record's image id: `imgid`, else `id`, else its `filename`."""
    for key in ("imgid", "id", "filename"):
        if record.get(key) is not None:
            return str(record[key])
    raise KeyError("imgid")


def in_split(record: dict[str, Any], split: str | None) -> bool:
    """Whether the record belongs to `split` (None or "all": every record)."""
    return split in (None, "all") or record.get("split") == split
