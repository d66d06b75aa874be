"""Caption tokenisation as coco-caption does it: Stanford PTBTokenizer, lower-cased, punctuation dropped.

Sentences of the plain class `rsvlm_zoo.metrics.ptb_python` handles are tokenised in Python with the jar's
exact output; only the others go through one run of the jar (no JVM at all when every sentence is plain).
`RSVLM_ZOO_PTB=java` in the environment, or `ptb_tokenize(..., python_fast_path=False)`, sends every
sentence to the jar.
"""

from __future__ import annotations

import os
import re

from rsvlm_zoo.metrics.java import FAST_JIT, pycocoevalcap_dir, run_java
from rsvlm_zoo.metrics.ptb_python import python_tokens

PTB_JAR = "stanford-corenlp-3.4.1.jar"

# Tokens coco-caption drops after tokenising (pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS). Note the
# bracket tokens stay: `-lowerCase` turns -LRB- into -lrb-, which this list does not hold.
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

# Characters the tokenizer treats as line breaks: pycocoevalcap only replaces "\n", so these would shift
# its output lines; here they become spaces (the tokenizer drops white space anyway).
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")

TOKENIZERS = ("ptb", "none")
# Environment variable: "java" sends every sentence to the jar.
PTB_ENGINE_ENV = "RSVLM_ZOO_PTB"


def ptb_jar() -> str:
    """Path of the PTB tokenizer jar shipped with pycocoevalcap."""
    return str(pycocoevalcap_dir() / "tokenizer" / PTB_JAR)


def _filter_line(line: str) -> str:
    return " ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS)


def ptb_tokenize(sentences: list[str], python_fast_path: bool | None = None) -> list[str]:
    """Tokenise sentences exactly as `pycocoevalcap.tokenizer.PTBTokenizer`, the non-plain ones in one JVM run.

    A sentence the jar reads differently depending on its neighbouring lines goes to the jar with its
    original neighbours (the nearest non-blank line on either side) around it.

    Args:
        sentences: raw captions, one per item.
        python_fast_path: tokenise the plain sentences in Python (same tokens); None reads
            `$RSVLM_ZOO_PTB` ("java": no), else yes.

    Returns:
        One tokenised, lower-cased, punctuation-free string per sentence (tokens joined by single spaces).

    Raises:
        JavaNotFoundError: when Java is absent.
        RuntimeError: when the tokenizer fails or returns a different number of lines.
    """
    if not sentences:
        return []
    if python_fast_path is None:
        python_fast_path = os.environ.get(PTB_ENGINE_ENV, "").strip().lower() != "java"
    lines = [_LINE_BREAKS.sub(" ", s) for s in sentences]
    if not python_fast_path:
        return _jar_tokenize(lines)
    plain = {line: python_tokens(line) for line in dict.fromkeys(lines)}  # each distinct sentence once
    out = [plain[line] for line in lines]
    missing = [i for i, tokens in enumerate(out) if tokens is None]
    if missing:
        send = _with_context(lines, missing)
        for i, tokens in zip(send, _jar_tokenize([lines[i] for i in send]), strict=True):
            if out[i] is None:
                out[i] = tokens
    return out  # type: ignore[return-value]


def _with_context(lines: list[str], indices: list[int]) -> list[int]:
    """`indices` with, around each, the lines up to and including the nearest non-blank one, in order."""
    keep = set(indices)
    for i in indices:
        for step in (-1, 1):
            j = i + step
            while 0 <= j < len(lines):
                keep.add(j)
                if lines[j].strip():
                    break
                j += step
    return sorted(keep)


def _jar_tokenize(lines: list[str]) -> list[str]:
    """Tokenise single-line sentences in one run of the PTB jar."""
    text = "\n".join(lines) + "\n"
    args = [
        *FAST_JIT,
        "-cp",
        ptb_jar(),
        "edu.stanford.nlp.process.PTBTokenizer",
        "-preserveLines",
        "-lowerCase",
    ]
    out = run_java(args, input_bytes=text.encode("utf-8")).decode("utf-8").split("\n")
    if len(out) < len(lines) or any(out[len(lines) :]):
        raise RuntimeError(f"PTB tokenizer returned {len(out)} lines for {len(lines)} sentences")
    return [_filter_line(line) for line in out[: len(lines)]]


def tokenize(sentences: list[str], tokenizer: str) -> list[str]:
    """Tokenise with `tokenizer`: "ptb" (coco-caption) or "none" (text already tokenised; kept as is)."""
    if tokenizer == "ptb":
        return ptb_tokenize(sentences)
    if tokenizer == "none":
        return list(sentences)
    raise ValueError(f"unknown tokenizer {tokenizer!r}; known: {', '.join(TOKENIZERS)}")
