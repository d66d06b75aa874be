"""Osprey-724K's record kinds and how Osprey's own loader turns each into a conversation.

Osprey-724K ships five files of one layout, `[{file_name, height, width, annotation: [{segmentation, bbox, ...}],
conversations | description}]`, whose text names regions as `<regionN>` (1-based) and carries no `<image>` or
`<mask>` token. Osprey's loader (`osprey/datasets/osprey_724k.py`) adds them per file kind:

- conversation, short-form, part-level (`ConversationDataset`): the first question starts with the overview line
  and "Ther are N part regions in the picture: region1<mask><pos>,region2<mask><pos>. " (its spelling), every
  `<` and `>` is removed from questions and answers (`<region1>` becomes `region1`), and short-form and part-level
  questions end with " Answer the question using a single word or phrase.";
- LVIS positive/negative (`OspreyLVISPosNeg`): each `<regionN>` in a question becomes `<mask><pos>` in place and
  the first question starts with the overview line; the yes/no answers stay as they are;
- detailed description (`OspreyDetailedDescription`): region k's `"<regionk>: text"` entry becomes the answer to
  one of 30 question templates with `<mask><pos>` in place of `<region>`, the overview line before the first.

The kind comes from the file name Osprey-724K uses (`osprey_short_form.json`, ...) or from the `kind` option.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from rsvlm_zoo.data.schema import DataFormatError, Turn
from rsvlm_zoo.tokens import OVERVIEW, region_list

MASK = "<mask><pos>"
SHORT_SUFFIX = " Answer the question using a single word or phrase."

# The `kind` option's values; "tokens" is the tokenised form (`<image>`, `<mask><pos>` in the text).
KINDS = ("auto", "tokens", "conversation", "short-form", "part-level", "lvis-pos-neg", "detailed-description")
RAW_KINDS = ("conversation", "short-form", "part-level", "lvis-pos-neg")
# Osprey-724K's file names (stem, optionally followed by a suffix such as `_100`) -> kind.
FILE_KINDS = {
    "osprey_conversation": "conversation",
    "osprey_short_form": "short-form",
    "osprey_part_level": "part-level",
    "osprey_lvis_positive_negative": "lvis-pos-neg",
    "osprey_detail_description": "detailed-description",
}
PREFIX_STYLES = ("osprey", "zoo")
DESCRIPTION_CHOICES = ("varied", "first")

# The question templates of Osprey's detailed-description loader, verbatim (typos included, as trained on).
DETAILED_QUESTIONS: tuple[str, ...] = (
    "Can you provide me with a detailed description of the region in the picture marked by <region>?",
    "I'm curious about the region represented by <region> in the picture. Could you describe it in detail?",
    "What can you tell me about the region indicated by <region> in the image?",
    "I'd like to know more about the area in the photo labeled <region>. Can you give me a detailed description?",
    "Could you describe the region shown as <region> in the picture in great detail?",
    "What details can you give me about the region outlined by <region> in the photo?",
    "Please provide me with a comprehensive description of the region marked with <region> in the image.",
    "Can you give me a detailed account of the region labeled as <region> in the picture?",
    "I'm interested in learning more about the region represented by <region> in the photo."
    " Can you describe it in detail?",
    "What is the region outlined by <region> in the picture like? Could you give me a detailed description?",
    "Can you provide me with a detailed description of the region in the picture marked by <region>, please?",
    "I'm curious about the region represented by <region> in the picture. Could you describe it in detail, please?",
    "What can you tell me about the region indicated by <region> in the image, exactly?",
    "I'd like to know more about the area in the photo labeled <region>, please."
    " Can you give me a detailed description?",
    "Could you describe the region shown as <region> in the picture in great detail, please?",
    "What details can you give me about the region outlined by <region> in the photo, please?",
    "Please provide me with a comprehensive description of the region marked with <region> in the image, please.",
    "Can you give me a detailed account of the region labeled as <region> in the picture, please?",
    "I'm interested in learning more about the region represented by <region> in the photo."
    " Can you describe it in detail, please?",
    "What is the region outlined by <region> in the picture like, please? Could you give me a detailed description?",
    "Please describe the region <region> in the image in detail.",
    "Can you offer a thorough analysis of the region <region> in the image?",
    "Could you elaborate on the region highlighted by <region> in the picture provided?",
    "Please share more information about the zone emphasized with <region> in the photo.",
    "What insights can you give ablout the area denoted by <region> in the image presented?",
    "Can you share a comprehensive rundown of the region denoted by <region> in the presented image?",
    "I'd like to know more about the region highlighted by <region> in the picture provided.",
    "Work through the important details of the area <region> in the image.",
    "Illustrate the area represtented by <region> through a descriptive explanation.",
    "Examine the region <region> closely and share its details.",
)

# A `<regionN>` reference as written in Osprey-724K's text (also `<region 3>` and `<Region3>`).
REGION_REF = re.compile(r"<\s*region\s*(\d+)\s*>", re.I)
_LVIS_REF = re.compile(r"<region(\d+)>")
_DESCRIPTION = re.compile(r"^\s*<([^>]*)>\s*:\s?(.*)$", re.S)


def kind_from_file_name(path: str | Path) -> str | None:
    """The Osprey-724K kind its file name names (`osprey_part_level.json`, `osprey_part_level_100.json`), else None."""
    stem = Path(path).stem.lower()
    for name, kind in FILE_KINDS.items():
        if stem == name or re.fullmatch(re.escape(name) + r"[_-]\w+", stem):
            return kind
    return None


def reference_forms(texts: list[str]) -> tuple[bool, bool]:
    """(holds `<mask>` tokens, holds `<regionN>` references) for a record's conversation texts."""
    text = "".join(texts)
    return "<mask>" in text, REGION_REF.search(text) is not None


def osprey_region_prefix(n_regions: int, style: str = "osprey") -> str:
    """The region list before the first question, as `rsvlm_zoo.tokens.region_list` writes it.

    `style`: `osprey` (Osprey's loader, verbatim) or `zoo` (the form `describe()` asks with).
    """
    return region_list(n_regions, style)


def raw_conversation(
    turns: list[Turn], n_regions: int, kind: str, style: str = "osprey"
) -> tuple[list[Turn], list[int] | None]:
    """A raw Osprey-724K conversation as Osprey's loader builds it for `kind` (see the module docstring).

    Args:
        turns: The record's turns, text as in the file.
        n_regions: Regions the record annotates.
        kind: One of `RAW_KINDS`.
        style: Region list form for the conversation kinds (`osprey_region_prefix`).

    Returns:
        The turns and the region each `<mask><pos>` refers to (None: occurrence k is region k).

    Raises:
        DataFormatError: an LVIS question naming a region the record does not annotate.
    """
    if kind == "lvis-pos-neg":
        out, refs = [], []
        for k, turn in enumerate(turns):
            text = turn.text
            if turn.role == "human":
                refs += [int(m) - 1 for m in _LVIS_REF.findall(text)]
                text = (OVERVIEW if k == 0 else "") + _LVIS_REF.sub(MASK, text)
            out.append(Turn(turn.role, text))
        bad = [r + 1 for r in refs if not 0 <= r < n_regions]
        if bad:
            raise DataFormatError(f"a question names region{bad[0]} but only {n_regions} regions are annotated")
        return out, (None if refs == list(range(n_regions)) else refs)
    suffix = SHORT_SUFFIX if kind in ("short-form", "part-level") else ""
    out = []
    for k, turn in enumerate(turns):
        text = turn.text.replace("<", "").replace(">", "")
        if turn.role == "human":
            text = (OVERVIEW + osprey_region_prefix(n_regions, style) if k == 0 else "") + text + suffix
        out.append(Turn(turn.role, text))
    return out, None


def description_question(key: str, index: int, choice: str = "varied") -> str:
    """The detailed-description question for entry `index` of record `key`, with `<mask><pos>` for the region.

    Args:
        key: The record's identity (file name and position), so a record always gets the same questions.
        index: The entry's position in the record's description list.
        choice: `varied`: one of `DETAILED_QUESTIONS` picked by a stable hash of (key, index), where Osprey's
            loader picks one at random; `first`: always the first template.
    """
    if choice == "first":
        template = DETAILED_QUESTIONS[0]
    else:
        template = DETAILED_QUESTIONS[zlib.crc32(f"{key}#{index}".encode()) % len(DETAILED_QUESTIONS)]
    return template.replace("<region>", MASK)


def detailed_description(
    descriptions: object, n_regions: int, key: str, choice: str = "varied"
) -> tuple[list[Turn], list[int] | None]:
    """`["<region1>: text", ...]` -> one question per entry (overview line before the first) and its answer.

    Entry k answers for the region its tag numbers (`<region2>`, also misspelt tags such as `<regin2>`), or for
    region k+1 when the tag holds no number, as Osprey's loader pairs entry k with annotation k.

    Raises:
        DataFormatError: an entry that is not "<tag>: text", a region number outside the annotation, no entries.
    """
    if not isinstance(descriptions, list):
        raise DataFormatError(f"description must be a list, got {type(descriptions).__name__}")
    turns: list[Turn] = []
    refs: list[int] = []
    for k, item in enumerate(descriptions):
        match = _DESCRIPTION.match(item) if isinstance(item, str) else None
        if match is None:
            raise DataFormatError(f"description[{k}] {str(item)[:40]!r} is not of the form '<regionN>: text'")
        number = re.search(r"\d+", match.group(1))
        index = int(number.group()) - 1 if number else k
        if not 0 <= index < n_regions:
            raise DataFormatError(f"description[{k}] names region{index + 1} but only {n_regions} are annotated")
        question = (OVERVIEW if k == 0 else "") + description_question(key, k, choice)
        turns += [Turn("human", question), Turn("gpt", match.group(2).strip())]
        refs.append(index)
    if not turns:
        raise DataFormatError("description list is empty; add '<regionN>: text' entries")
    return turns, (None if refs == list(range(n_regions)) else refs)
