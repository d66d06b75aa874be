"""Caption tokenisation as coco-caption does it: Stanford PTBTokenizer, lower-cased, punctuation dropped."""

from __future__ import annotations

import re

from rsvlm_zoo.metrics.java import FAST_JIT, pycocoevalcap_dir, run_java

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


def ptb_jar() -> str:
    """Path of the PTB tokenizer jar shipped with pycocoevalcap."""
    return str(pycocoevalcap_dir() / "tokenizer" / PTB_JAR)


def _filter_line(line: str) -> str:
    return " ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS)


def ptb_tokenize(sentences: list[str]) -> list[str]:
    """Tokenise many sentences in one JVM run, exactly as `pycocoevalcap.tokenizer.PTBTokenizer`.

    Args:
        sentences: raw captions, one per item.

    Returns:
        One tokenised, lower-cased, punctuation-free string per sentence (tokens joined by single spaces).

    Raises:
        JavaNotFoundError: when Java is absent.
        RuntimeError: when the tokenizer fails or returns a different number of lines.
    """
    if not sentences:
        return []
    text = "\n".join(_LINE_BREAKS.sub(" ", s) for s in sentences) + "\n"
    args = [
        *FAST_JIT,
        "-cp",
        ptb_jar(),
        "edu.stanford.nlp.process.PTBTokenizer",
        "-preserveLines",
        "-lowerCase",
    ]
    out = run_java(args, input_bytes=text.encode("utf-8")).decode("utf-8")
    lines = out.split("\n")
    if len(lines) < len(sentences) or any(lines[len(sentences) :]):
        raise RuntimeError(f"PTB tokenizer returned {len(lines)} lines for {len(sentences)} sentences")
    return [_filter_line(line) for line in lines[: len(sentences)]]


def tokenize(sentences: list[str], tokenizer: str) -> list[str]:
    """Tokenise with `tokenizer`: "ptb" (coco-caption) or "none" (text already tokenised; kept as is)."""
    if tokenizer == "ptb":
        return ptb_tokenize(sentences)
    if tokenizer == "none":
        return list(sentences)
    raise ValueError(f"unknown tokenizer {tokenizer!r}; known: {', '.join(TOKENIZERS)}")
