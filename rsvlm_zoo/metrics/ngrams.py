"""N-gram counts of tokenised sentences, shared by BLEU and CIDEr-D (coco-caption's `precook`)."""

from __future__ import annotations

from collections import Counter

Ngram = tuple[str, ...]
# Per sentence: its word count and, for each order k = 1..n, the counts of its k-grams (in first-seen order).
Cooked = tuple[int, list[Counter[Ngram]]]


def cook(sentence: str, n: int = 4) -> Cooked:
    """Word count and 1..n-gram counts of a tokenised sentence, words split on white space."""
    words = sentence.split()
    return len(words), [Counter(zip(*(words[i:] for i in range(k)), strict=False)) for k in range(1, n + 1)]


class NgramCache:
    """Cooks each distinct sentence once (captions and references repeat a lot in caption data sets)."""

    def __init__(self, n: int = 4) -> None:
        self.n = n
        self._cache: dict[str, Cooked] = {}

    def __call__(self, sentence: str) -> Cooked:
        """Cooked form of `sentence`, computed at most once."""
        cooked = self._cache.get(sentence)
        if cooked is None:
            cooked = self._cache[sentence] = cook(sentence, self.n)
        return cooked
