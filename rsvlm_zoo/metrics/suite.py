"""Score a caption corpus with any subset of the coco-caption metrics: one tokenisation, Java in parallel."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rsvlm_zoo.metrics.bleu_scorer import bleu_sample_stats, corpus_bleu
from rsvlm_zoo.metrics.cider_scorer import cider_d
from rsvlm_zoo.metrics.meteor_scorer import MeteorScorer
from rsvlm_zoo.metrics.ngrams import NgramCache
from rsvlm_zoo.metrics.ptb import tokenize
from rsvlm_zoo.metrics.rouge_scorer import corpus_rouge_l
from rsvlm_zoo.metrics.spice_scorer import spice_scores


class _Background:
    """Run a function in a thread; `result()` joins it and re-raises its exception."""

    def __init__(self, fn: Callable[[], Any], name: str) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller in result()
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def tokenize_corpus(
    preds: Sequence[str], target: Sequence[Sequence[str]], tokenizer: str
) -> tuple[list[str], list[list[str]]]:
    """Tokenise predictions and references in one tokenizer run."""
    flat = list(preds)
    for refs in target:
        flat.extend(refs)
    tokens = tokenize(flat, tokenizer)
    hyps, pos, refs_out = tokens[: len(preds)], len(preds), []
    for refs in target:
        refs_out.append(tokens[pos : pos + len(refs)])
        pos += len(refs)
    return hyps, refs_out


def score_captions(
    preds: Sequence[str],
    target: Sequence[Sequence[str]],
    *,
    tokenizer: str = "ptb",
    bleu_n: int | None = 4,
    rouge: bool = True,
    cider: bool = True,
    cider_n: int = 4,
    cider_sigma: float = 6.0,
    meteor: MeteorScorer | None = None,
    spice: bool = False,
    corenlp_dir: str | os.PathLike[str] | None = None,
    spice_cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, float]:
    """Corpus scores under coco-caption's keys (`Bleu_1`..`Bleu_n`, `METEOR`, `ROUGE_L`, `CIDEr`, `SPICE`).

    METEOR and SPICE run in their JVMs while BLEU, ROUGE-L and CIDEr-D are computed in this thread.

    Args:
        preds: one raw prediction per sample.
        target: the raw references of each sample.
        tokenizer: "ptb" (coco-caption's PTB tokenizer) or "none" (already tokenised).
        bleu_n: highest BLEU order, None to skip BLEU.
        rouge: whether to compute ROUGE-L.
        cider: whether to compute CIDEr-D.
        cider_n: highest CIDEr-D n-gram order.
        cider_sigma: CIDEr-D length-penalty standard deviation.
        meteor: a METEOR scorer to use, None to skip METEOR.
        spice: whether to compute SPICE.
        corenlp_dir: folder of the CoreNLP 3.6.0 jars for SPICE.
        spice_cache_dir: SPICE's parse cache folder (optional).
    """
    if not preds:
        return {}
    if meteor is not None:
        meteor.start()  # the JVM boots while the corpus is tokenised
    hyps, refs = tokenize_corpus(preds, target, tokenizer)
    jobs: dict[str, _Background] = {}
    if meteor is not None:
        meteor.prepare(hyps, refs)  # the table cut runs here; the JVM parses it while the other metrics run
        jobs["METEOR"] = _Background(lambda: meteor.corpus_score(hyps, refs), "meteor")
    if spice:
        jobs["SPICE"] = _Background(
            lambda: spice_scores(hyps, refs, corenlp_dir=corenlp_dir, cache_dir=spice_cache_dir)[0], "spice"
        )
    out: dict[str, float] = {}
    try:
        orders = max(bleu_n or 0, cider_n if cider else 0)
        if orders:
            cook = NgramCache(orders)
            hyp_c = [cook(h) for h in hyps]
            ref_c = [[cook(r) for r in rs] for rs in refs]
            if bleu_n:
                stats = [bleu_sample_stats(h, rs, bleu_n) for h, rs in zip(hyp_c, ref_c, strict=True)]
                for k, value in enumerate(corpus_bleu(stats, bleu_n), start=1):
                    out[f"Bleu_{k}"] = value
        rouge_l = corpus_rouge_l(hyps, refs)[0] if rouge else None
        cider_value = cider_d(hyp_c, ref_c, cider_n, cider_sigma)[0] if cider else None
    finally:
        results = {}
        for key, job in jobs.items():
            results[key] = job.result()
    if "METEOR" in results:
        out["METEOR"] = results["METEOR"]
    if rouge_l is not None:
        out["ROUGE_L"] = rouge_l
    if cider_value is not None:
        out["CIDEr"] = cider_value
    if "SPICE" in results:
        out["SPICE"] = results["SPICE"]
    return out
