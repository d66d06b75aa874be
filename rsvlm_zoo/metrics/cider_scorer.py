"""CIDEr-D exactly as coco-caption's `CiderScorer` (IDF over the references of the whole corpus)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from rsvlm_zoo.metrics.ngrams import Cooked, Ngram

_Vector = tuple[list[dict[Ngram, float]], list[float], int]


def document_frequency(refs: Sequence[Sequence[Cooked]], n: int = 4) -> Counter[Ngram]:
    """Number of samples whose references contain each n-gram (orders 1..n)."""
    df: Counter[Ngram] = Counter()
    for sample_refs in refs:
        grams: set[Ngram] = set()
        for _, counts in sample_refs:
            for k in range(n):
                grams.update(counts[k])
        df.update(grams)
    return df


class _Weights:
    """TF-IDF vectors of cooked sentences for one corpus: idf(g) = log(N) - log(max(1, df(g)))."""

    def __init__(self, df: Counter[Ngram], num_docs: int, n: int) -> None:
        self.n = n
        self.ref_len = np.log(float(num_docs))
        self._log_df: dict[int, float] = {}
        self._idf: dict[Ngram, float] = {}
        self._df = df

    def idf(self, gram: Ngram) -> float:
        value = self._idf.get(gram)
        if value is None:
            d = self._df.get(gram, 0)
            log_df = self._log_df.get(d)
            if log_df is None:
                # np.log on the same float as coco-caption: bit-identical weights.
                log_df = self._log_df[d] = float(np.log(max(1.0, float(d))))
            value = self._idf[gram] = float(self.ref_len - log_df)
        return value

    def vector(self, cooked: Cooked) -> _Vector:
        """Per-order tf-idf dicts, per-order norms and the bigram count (coco-caption's `counts2vec`)."""
        vec: list[dict[Ngram, float]] = []
        norms: list[float] = []
        for k in range(self.n):
            weights = {}
            sq = 0.0
            for gram, tf in cooked[1][k].items():
                w = float(tf) * self.idf(gram)
                weights[gram] = w
                sq += w * w
            vec.append(weights)
            norms.append(math.sqrt(sq))
        length = sum(cooked[1][1].values()) if self.n > 1 else 0
        return vec, norms, length


def _sim(hyp: _Vector, ref: _Vector, n: int, sigma: float) -> list[float]:
    vec_h, norm_h, len_h = hyp
    vec_r, norm_r, len_r = ref
    delta = float(len_h - len_r)
    penalty = math.e ** (-(delta**2) / (2 * sigma**2))
    out = []
    for k in range(n):
        val = 0.0
        ref_k = vec_r[k]
        for gram, h in vec_h[k].items():
            r = ref_k.get(gram)
            if r:
                val += min(h, r) * r
        if norm_h[k] != 0 and norm_r[k] != 0:
            val /= norm_h[k] * norm_r[k]
        out.append(val * penalty)
    return out


def cider_d(
    hyps: Sequence[Cooked], refs: Sequence[Sequence[Cooked]], n: int = 4, sigma: float = 6.0
) -> tuple[float, list[float]]:
    """Corpus CIDEr-D and per-sample scores.

    Args:
        hyps: cooked hypothesis of every sample (at least `n` orders).
        refs: cooked references of every sample.
        n: highest n-gram order.
        sigma: standard deviation of the Gaussian length penalty.

    Returns:
        (mean over samples, per-sample scores); per-sample scores match coco-caption to the last bit or two.
    """
    if not hyps:
        return 0.0, []
    weights = _Weights(document_frequency(refs, n), len(refs), n)
    ref_vectors: dict[int, _Vector] = {}
    scores = []
    for hyp, sample_refs in zip(hyps, refs, strict=True):
        vec_h = weights.vector(hyp)
        acc = [0.0] * n
        for ref in sample_refs:
            vec_r = ref_vectors.get(id(ref))
            if vec_r is None:
                vec_r = ref_vectors[id(ref)] = weights.vector(ref)
            for k, v in enumerate(_sim(vec_h, vec_r, n, sigma)):
                acc[k] += v
        total = 0.0
        for v in acc:  # np.mean's order for short arrays: sequential sum, then divide
            total += v
        score = total / n
        score /= len(sample_refs)
        score *= 10.0
        scores.append(score)
    return math.fsum(scores) / len(scores), scores
