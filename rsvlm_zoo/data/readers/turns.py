"""Conversation helpers shared by the conversation readers: turns, token counts, Osprey's forms."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rsvlm_zoo.data.readers._common import expect, load_json
from rsvlm_zoo.data.schema import DataFormatError, Turn
from rsvlm_zoo.tokens import OVERVIEW, region_list

ROLES = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt", "model": "gpt"}
MASK = "<mask><pos>"
DESCRIPTION_QUESTION = "Can you provide me with a detailed description of the region in the picture marked by {}?"
_DESCRIPTION = re.compile(r"^\s*<region(\d+)>\s*:\s*(.*)$", re.S)
_REGION_NAME = re.compile(r"<(region\d+)>")


def load_list(annotation: Path, encoding_errors: str, what: str) -> list:
    """The JSON file, which must hold a list of records."""
    data = load_json(annotation, encoding_errors)
    if not isinstance(data, list):
        raise DataFormatError(f"{annotation}: expected a JSON list of records ({what}), got {type(data).__name__}")
    return data


def parse_conversation(turns: Any, what: str = "conversations") -> list[Turn]:
    """`[{from, value}, ...]` -> Turns; roles human/user and gpt/assistant; must alternate and end with gpt.

    Raises:
        DataFormatError: bad roles, order, or no answer turn.
    """
    expect(turns, list, what)
    out = []
    for k, turn in enumerate(turns):
        expect(turn, dict, f"{what}[{k}]")
        role = ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            raise DataFormatError(f"{what}[{k}] has role {turn.get('from')!r}; use 'human' or 'gpt'")
        text = expect(turn.get("value"), str, f"{what}[{k}].value")
        expected = "human" if k % 2 == 0 else "gpt"
        if role != expected:
            raise DataFormatError(f"{what}[{k}] is a {role} turn where a {expected} turn belongs; turns must alternate")
        out.append(Turn(role, text))
    if not out or out[-1].role != "gpt":
        raise DataFormatError(f"{what} has no answer (gpt) turn after the last question; add the answer")
    return out


def check_image_token(turns: list[Turn], what: str = "conversations") -> None:
    """Exactly one `<image>` in the conversation."""
    n = sum(t.text.count("<image>") for t in turns)
    if n != 1:
        raise DataFormatError(f"{what} holds {n} <image> tokens; it needs exactly one (in the first question)")


def check_mask_count(turns: list[Turn], n_regions: int, refs: list[int] | None) -> None:
    """The number of `<mask>` tokens must equal the region references (region_refs, else one per region)."""
    n_mask = sum(t.text.count("<mask>") for t in turns)
    n_pos = sum(t.text.count("<pos>") for t in turns)
    expected = len(refs) if refs is not None else n_regions
    if n_mask != n_pos:
        raise DataFormatError(f"conversation has {n_mask} <mask> but {n_pos} <pos> tokens; write them as <mask><pos>")
    if n_mask != expected:
        raise DataFormatError(
            f"conversation has {n_mask} <mask><pos> placeholders but the annotation supports {expected} "
            f"({n_regions} regions" + (f", {len(refs)} region_refs)" if refs is not None else ")") + "; make them match"
        )
    if refs is not None and any(not 0 <= r < n_regions for r in refs):
        raise DataFormatError(f"region_refs {refs} point outside the {n_regions} regions")


def osprey_prefix(turns: list[Turn], n_regions: int) -> list[Turn]:
    """Osprey's dataset-code form: overview + region list with `<mask><pos>` before the first question.

    `<regionK>` in the raw text becomes `regionK`, as Osprey's loader does.
    """
    head = OVERVIEW + region_list(n_regions)
    out = [Turn(t.role, _REGION_NAME.sub(r"\1", t.text)) for t in turns]
    out[0] = Turn("human", head + out[0].text)
    return out


def description_turns(descriptions: Any, n_regions: int) -> tuple[list[Turn], list[int] | None]:
    """`["<region1>: text", ...]` -> one question per region (with `<mask><pos>`) and its answer."""
    expect(descriptions, list, "description")
    turns, refs = [], []
    for k, item in enumerate(descriptions):
        m = _DESCRIPTION.match(expect(item, str, f"description[{k}]"))
        if m is None:
            raise DataFormatError(f"description[{k}] {item[:40]!r} is not of the form '<regionN>: text'")
        index = int(m.group(1)) - 1
        if not 0 <= index < n_regions:
            raise DataFormatError(f"description[{k}] names region{index + 1} but only {n_regions} are annotated")
        question = (OVERVIEW if k == 0 else "") + DESCRIPTION_QUESTION.format(MASK)
        turns += [Turn("human", question), Turn("gpt", m.group(2).strip())]
        refs.append(index)
    if not turns:
        raise DataFormatError("description list is empty; add '<regionN>: text' entries")
    return turns, (None if refs == list(range(n_regions)) else refs)
