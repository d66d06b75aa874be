"""Caption metrics as torchmetrics Metrics: BLEU, METEOR, ROUGE-L, CIDEr-D, SPICE and the whole suite."""

from __future__ import annotations

import os
from typing import Any

import torch

from rsvlm_zoo.metrics.base import CaptionStateMetric, as_tensors
from rsvlm_zoo.metrics.java import find_java
from rsvlm_zoo.metrics.meteor_scorer import MeteorScorer
from rsvlm_zoo.metrics.ptb import TOKENIZERS
from rsvlm_zoo.metrics.spice_scorer import resolve_corenlp_dir
from rsvlm_zoo.metrics.suite import score_captions


class _CocoCaptionMetric(CaptionStateMetric):
    """Shared constructor checks; subclasses say which scores `score_captions` computes."""

    _key = ""

    def __init__(self, tokenizer: str = "ptb", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; known: {', '.join(TOKENIZERS)}")
        self.tokenizer = tokenizer
        if tokenizer == "ptb":
            find_java()  # fail now, with the install hint, rather than at the end of an epoch

    def _suite_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def _scores(self) -> dict[str, float]:
        if not self.preds:
            return {}
        kwargs = {"bleu_n": None, "rouge": False, "cider": False, **self._suite_kwargs()}
        return self._compute_once(lambda: score_captions(self.preds, self.target, tokenizer=self.tokenizer, **kwargs))

    def compute(self) -> torch.Tensor:
        """Corpus score over everything seen since the last reset (0 when nothing was seen)."""
        return torch.tensor(self._scores().get(self._key, 0.0), dtype=torch.float64)


class BLEU(_CocoCaptionMetric):
    """Corpus BLEU-n as coco-caption (`Bleu(n)`, 'closest' reference length); `compute()` returns BLEU-n.

    Args:
        n: highest n-gram order.
        tokenizer: "ptb" (coco-caption's PTB tokenizer, needs Java) or "none" (text already tokenised).

    Example:
        >>> m = BLEU(n=2, tokenizer="none")
        >>> m.update(["a red car on the road"], [["a red car on a road", "a car"]])
        >>> round(float(m.compute()), 4)
        0.7071
    """

    def __init__(self, n: int = 4, tokenizer: str = "ptb", **kwargs: Any) -> None:
        super().__init__(tokenizer=tokenizer, **kwargs)
        self.n = n
        self._key = f"Bleu_{n}"

    def _suite_kwargs(self) -> dict[str, Any]:
        return {"bleu_n": self.n}


class ROUGEL(_CocoCaptionMetric):
    """Mean ROUGE-L F-measure (beta 1.2) as coco-caption's `Rouge`."""

    _key = "ROUGE_L"

    def _suite_kwargs(self) -> dict[str, Any]:
        return {"rouge": True}


class CIDEr(_CocoCaptionMetric):
    """CIDEr-D as coco-caption's `Cider`: IDF over the references of the whole (gathered) corpus.

    Args:
        n: highest n-gram order.
        sigma: standard deviation of the length penalty.
        tokenizer: "ptb" (needs Java) or "none".
    """

    _key = "CIDEr"

    def __init__(self, n: int = 4, sigma: float = 6.0, tokenizer: str = "ptb", **kwargs: Any) -> None:
        super().__init__(tokenizer=tokenizer, **kwargs)
        self.n = n
        self.sigma = sigma

    def _suite_kwargs(self) -> dict[str, Any]:
        return {"cider": True, "cider_n": self.n, "cider_sigma": self.sigma}


class _MeteorMixin:
    """Owns one METEOR JVM, kept between epochs while its paraphrase table covers the corpus.

    With `prewarm` the JVM starts at the first update, so its start-up overlaps the epoch: with the
    corpus-cut paraphrase table (the default) it then waits on a pipe for the table, which `compute()` cuts
    once the corpus is known (without named pipes, e.g. on Windows, it starts at `compute()`); with
    `paraphrase="full"` it loads METEOR's whole table (~6 s) meanwhile.
    """

    _meteor: MeteorScorer | None

    def _on_update(self) -> None:
        if self._meteor is not None and self.prewarm and self._is_rank_zero():  # type: ignore[attr-defined]
            self._meteor.start()

    def close(self) -> None:
        """Stop the METEOR JVM (a later compute starts a new one)."""
        if self._meteor is not None:
            self._meteor.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class METEOR(_MeteorMixin, _CocoCaptionMetric):
    """Corpus METEOR 1.5 (`-l en -norm`) with pycocoevalcap's jar; equals pycocoevalcap's `Meteor`.

    Args:
        tokenizer: "ptb" or "none".
        prewarm: start the JVM at the first `update()` so its start-up overlaps the epoch.
        max_heap: the JVM's -Xmx.
        paraphrase: "corpus" (METEOR loads only the paraphrase entries the corpus can match: same
            score, seconds faster) or "full" (its whole table, as pycocoevalcap).
    """

    _key = "METEOR"

    def __init__(
        self,
        tokenizer: str = "ptb",
        prewarm: bool = True,
        max_heap: str = "2G",
        paraphrase: str = "corpus",
        **kwargs: Any,
    ) -> None:
        super().__init__(tokenizer=tokenizer, **kwargs)
        find_java()
        self.prewarm = prewarm
        self._meteor = MeteorScorer(max_heap=max_heap, paraphrase=paraphrase)

    def _suite_kwargs(self) -> dict[str, Any]:
        return {"meteor": self._meteor}


class SPICE(_CocoCaptionMetric):
    """Mean SPICE F-score with pycocoevalcap's jar; needs the Stanford CoreNLP 3.6.0 jars locally.

    Args:
        corenlp_dir: folder holding stanford-corenlp-3.6.0.jar and stanford-corenlp-3.6.0-models.jar;
            defaults to $RSVLM_SPICE_CORENLP_DIR, then pycocoevalcap's spice/lib. Nothing is downloaded.
        cache_dir: optional SPICE parse cache folder.
        tokenizer: "ptb" or "none".

    Raises:
        SpiceModelsNotFoundError: at construction when the jars are not found.
    """

    _key = "SPICE"

    def __init__(
        self,
        corenlp_dir: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        tokenizer: str = "ptb",
        **kwargs: Any,
    ) -> None:
        super().__init__(tokenizer=tokenizer, **kwargs)
        find_java()
        self.corenlp_dir = str(resolve_corenlp_dir(corenlp_dir))
        self.cache_dir = None if cache_dir is None else str(cache_dir)

    def _suite_kwargs(self) -> dict[str, Any]:
        return {"spice": True, "corenlp_dir": self.corenlp_dir, "spice_cache_dir": self.cache_dir}


class CaptionMetrics(_MeteorMixin, _CocoCaptionMetric):
    """The coco-caption suite in one pass: one tokenisation, one METEOR JVM running beside the Python metrics.

    `compute()` returns a dict of float64 scalars under coco-caption's keys: `Bleu_1`..`Bleu_4`, `METEOR`,
    `ROUGE_L`, `CIDEr` (and `SPICE` when enabled); usable in a `MetricCollection` or with `self.log_dict`.

    Args:
        bleu_n: highest BLEU order.
        meteor: whether to compute METEOR (needs Java).
        spice: whether to compute SPICE (needs Java and the CoreNLP 3.6.0 jars, see `SPICE`).
        corenlp_dir: folder of the CoreNLP jars for SPICE.
        tokenizer: "ptb" (coco-caption, needs Java) or "none" (already tokenised).
        prewarm: start the METEOR JVM at the first `update()`.
        meteor_paraphrase: METEOR's paraphrase table, "corpus" (cut to the corpus, same scores) or "full".
    """

    def __init__(
        self,
        bleu_n: int = 4,
        meteor: bool = True,
        spice: bool = False,
        corenlp_dir: str | os.PathLike[str] | None = None,
        tokenizer: str = "ptb",
        prewarm: bool = True,
        meteor_paraphrase: str = "corpus",
        **kwargs: Any,
    ) -> None:
        super().__init__(tokenizer=tokenizer, **kwargs)
        self.bleu_n = bleu_n
        self.prewarm = prewarm
        self.spice = spice
        self._meteor = MeteorScorer(paraphrase=meteor_paraphrase) if meteor else None
        if meteor or spice:
            find_java()
        self.corenlp_dir = str(resolve_corenlp_dir(corenlp_dir)) if spice else None

    def _suite_kwargs(self) -> dict[str, Any]:
        return {
            "bleu_n": self.bleu_n,
            "rouge": True,
            "cider": True,
            "meteor": self._meteor,
            "spice": self.spice,
            "corenlp_dir": self.corenlp_dir,
        }

    def keys(self) -> list[str]:
        """The keys `compute()` returns."""
        keys = [f"Bleu_{k}" for k in range(1, self.bleu_n + 1)]
        keys += ["METEOR"] if self._meteor is not None else []
        keys += ["ROUGE_L", "CIDEr"] + (["SPICE"] if self.spice else [])
        return keys

    def compute(self) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """All scores over everything seen since the last reset (zeros when nothing was seen)."""
        scores = self._scores()
        return as_tensors({k: scores.get(k, 0.0) for k in self.keys()})
