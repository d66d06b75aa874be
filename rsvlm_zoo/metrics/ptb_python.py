"""coco-caption's PTB tokenisation in Python for plain sentences, giving the jar's exact tokens.

Most captions are ASCII words separated by spaces, at most ending in a full stop. For such a sentence the
Stanford PTBTokenizer 3.4.1 run by pycocoevalcap (`-preserveLines -lowerCase`, then the PUNCTUATIONS
filter) splits only at spaces, splits the clitics 's 'm 'd 're 'll 've and the n't of negations off their
word and splits a few assimilated words ("cannot" -> "can not"); the filter then drops a final "." token.
The function `python_tokens` applies exactly that to the sentences of a deliberately narrow class and
answers None for every other sentence, which then goes to the jar:

- ASCII letters, digits, spaces, hyphens, underscores, apostrophes and full stops only;
- each space-separated piece is a word of letters and digits, a compound of letter-only words joined
  by single "-" or "_", a letter-only word with one lower-case clitic 's 'm 'd 're 'll 've, or one of the
  usual negations (`NEGATIONS` + "n't": "don't", "isn't", "can't", ...);
- a full stop only as the last piece, on its own (a stop attached to a word is left to the jar: whether
  it splits off depends on the jar's abbreviation lists and on the next line);
- no word the jar splits (`ASSIMILATIONS`), and no two neighbouring pieces holding digits (the jar's
  telephone-number rule).

The class was checked against the jar on every caption of the shipped references files, on the 40,000
letter-only words of METEOR's paraphrase table in several forms, and on adversarial sentences (see
tests/metrics/test_ptb_python.py).
"""

from __future__ import annotations

import re

# Letter-only words the jar splits (assimilations), compared lower-cased.
ASSIMILATIONS = frozenset(["cannot", "gimme", "gonna", "gotta", "lemme", "wanna"])
# Words the jar splits before "n't" (others ending in "n't" it may split elsewhere), compared lower-cased.
NEGATIONS = frozenset(
    "ai are ca could dare did does do had has have is must need ought sha should was were wo would".split()
)

_ALLOWED = re.compile(r"[A-Za-z0-9 '._-]*")
_ALNUM = re.compile(r"[A-Za-z0-9]+")
_COMPOUND = re.compile(r"[A-Za-z]+(?:[-_][A-Za-z]+)+")
_CLITIC = re.compile(r"([A-Za-z]+?)(n't|'s|'m|'d|'re|'ll|'ve)")
_DIGIT = re.compile(r"[0-9]")


def _word_tokens(piece: str) -> list[str] | None:
    """Lower-cased tokens of one space-separated piece without a full stop, or None outside the class."""
    if _ALNUM.fullmatch(piece) or _COMPOUND.fullmatch(piece):
        parts = re.split(r"[-_]", piece.lower())
        return None if ASSIMILATIONS.intersection(parts) else [piece.lower()]
    clitic = _CLITIC.fullmatch(piece)
    if clitic is not None:
        stem = clitic.group(1).lower()
        if stem in ASSIMILATIONS or (clitic.group(2) == "n't" and stem not in NEGATIONS):
            return None
        return [stem, clitic.group(2)]
    return None


def python_tokens(sentence: str) -> str | None:
    """The jar's filtered tokens of `sentence` joined by spaces, or None when it is outside the class."""
    if not _ALLOWED.fullmatch(sentence):
        return None
    pieces = sentence.split()
    if pieces and pieces[-1] == ".":
        pieces.pop()
    tokens: list[str] = []
    had_digit = False
    for piece in pieces:
        if "." in piece:
            return None
        digit = _DIGIT.search(piece) is not None
        if digit and had_digit:
            return None
        had_digit = digit
        words = _word_tokens(piece)
        if words is None:
            return None
        tokens.extend(words)
    return " ".join(tokens)
