"""Validation, test and predict steps of a region VLM: generate, score per evaluation set, return prediction records.

Answer metrics follow torchgeo's pattern: one `MetricCollection` (`answer_metrics`) built from `eval_metrics` when
the module is made, cloned per split and evaluation set (`val_metrics`, `test_metrics`; prefix `val/`, postfix
`_<set>`) on the set's first batch. The clones are registered on the module (they follow its device and gather over
processes) and reset at the start of every evaluation epoch. Each step returns its answers and prediction records
(`{"predictions": [...], "records": [...], "eval_set": name}`): the figure callback and the evaluation writer read
them from there.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torchmetrics import MetricCollection

from rsvlm_zoo.batch import Batch
from rsvlm_zoo.evaluation.answer_metrics import build_answer_metrics
from rsvlm_zoo.evaluation.records import prediction_records

SPLITS = ("val", "test")


class AnswerEvaluation(L.LightningModule):
    """Mixin for a LightningModule with `generate(batch)`, `llm.tokenizer` and `hparams.eval_metrics`."""

    def _init_evaluation(self, eval_metrics: tuple[str, ...]) -> None:
        """Build the metric collection (an unknown name fails here, not after the first epoch) and the split slots."""
        self.answer_metrics = MetricCollection(build_answer_metrics(eval_metrics), compute_groups=False)
        self.val_metrics = nn.ModuleDict()
        self.test_metrics = nn.ModuleDict()
        self.eval_results: dict[str, dict[str, float]] = {}
        self._active_sets: dict[str, dict[str, str]] = {split: {} for split in SPLITS}

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Generate answers and score them; returns the answers, their records and the evaluation set's name."""
        return self._score_answers(batch, "val", dataloader_idx)

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """As validation, logged under `test/`."""
        return self._score_answers(batch, "test", dataloader_idx)

    def split_metrics(self, split: str, name: str) -> MetricCollection:
        """The metrics of evaluation set `name` in `split`: a clone of `answer_metrics`, made on first use."""
        slots = getattr(self, f"{split}_metrics")
        key = name.replace(".", "_")  # module names cannot hold dots
        if key not in slots:
            slots[key] = self.answer_metrics.clone(prefix=f"{split}/", postfix=f"_{name}").to(self.device)
        self._active_sets[split].setdefault(name, key)
        return slots[key]

    def _score_answers(self, batch: Batch | None, split: str, dataloader_idx: int) -> dict[str, Any]:
        if batch is None:
            return {"predictions": [], "records": [], "eval_set": None}
        preds = self.generate(batch)
        name = (batch.get("meta") or [{}])[0].get("eval_name") or f"set{dataloader_idx}"
        references = batch.get("references") or [[r] for r in batch["answers"]]
        self.split_metrics(split, name).update(preds, references)
        records = prediction_records(batch, preds, self.llm.tokenizer)
        return {"predictions": preds, "records": records, "eval_set": name}

    def _start_evaluation(self, split: str) -> None:
        """Reset the split's metric state and this run's scores."""
        for metrics in getattr(self, f"{split}_metrics").values():
            metrics.reset()
        self._active_sets[split] = {}
        self.eval_results = {}

    def on_validation_epoch_start(self) -> None:
        """Fresh metric state for this validation run."""
        self._start_evaluation("val")

    def on_test_epoch_start(self) -> None:
        """Fresh metric state for this test run."""
        self._start_evaluation("test")

    def _log_eval(self, split: str) -> None:
        slots = getattr(self, f"{split}_metrics")
        for name, key in self._active_sets[split].items():
            collection = slots[key]
            scores = {k: float(v) for k, v in collection.compute().items()}
            start, end = len(collection.prefix or ""), len(collection.postfix or "")
            self.eval_results[name] = {k[start : len(k) - end]: v for k, v in scores.items()}
            self.log_dict(scores, add_dataloader_idx=False, sync_dist=False)

    def predict_step(self, batch: Batch | None, batch_idx: int, dataloader_idx: int = 0) -> list[dict]:
        """Greedy answers for a prompt batch, as records (sample id, prompt, answer, references)."""
        if batch is None:
            return []
        return prediction_records(batch, self.generate(batch), self.llm.tokenizer)

    def on_validation_epoch_end(self) -> None:
        """Log every metric of every evaluation set."""
        self._log_eval("val")

    def on_test_epoch_end(self) -> None:
        """As validation, under `test/`."""
        self._log_eval("test")

    def on_fit_end(self) -> None:
        """Report the final evaluation metrics as a table, once (rank zero), through Lightning's logger."""
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("val/")}
        if metrics:
            width = max(map(len, metrics))
            rows = [f"  {k:<{width}}  {v:.4f}" for k, v in sorted(metrics.items())]
            rank_zero_info("\n".join(["final validation metrics", *rows]))
