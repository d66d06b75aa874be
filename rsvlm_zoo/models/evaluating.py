"""Validation, test and predict steps of a region VLM: generate, score per evaluation set, keep prediction records.

Answer metrics are torchmetrics objects registered on the module (they follow its device and gather over
processes), one collection per split and evaluation set, built on the set's first batch and reset at the start
of every evaluation epoch; the records are what `rsvlm test` and `rsvlm predict` write.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from rsvlm_zoo.batch import Batch
from rsvlm_zoo.evaluation.answer_metrics import build_answer_metrics, compute_scores
from rsvlm_zoo.evaluation.records import prediction_records


class AnswerEvaluation(L.LightningModule):
    """Mixin for a LightningModule with `generate(batch)`, `llm.tokenizer` and `hparams.eval_metrics`."""

    def _init_evaluation(self, eval_metrics: tuple[str, ...]) -> None:
        """Check the metric names (an unknown one fails here, not after the first epoch) and register the splits."""
        build_answer_metrics(eval_metrics)
        self.split_metrics = nn.ModuleDict({"val": nn.ModuleDict(), "test": nn.ModuleDict()})

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, list[str]]:
        """Generate answers and score them; returns `{"predictions": answers}` (the figure callback reads them)."""
        return {"predictions": self._score_answers(batch, "val", dataloader_idx)}

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, list[str]]:
        """As validation, logged under `test/`."""
        return {"predictions": self._score_answers(batch, "test", dataloader_idx)}

    def _set_metrics(self, split: str, name: str) -> nn.ModuleDict:
        """The metrics of evaluation set `name` in `split`, built (on this module's device) on first use."""
        key = name.replace(".", "_")  # module names cannot hold dots
        metrics = self.split_metrics[split]
        if key not in metrics:
            metrics[key] = nn.ModuleDict(build_answer_metrics(self.hparams.eval_metrics)).to(self.device)
        self._active_sets[split].setdefault(name, key)
        return metrics[key]

    def _score_answers(self, batch: Batch | None, split: str, dataloader_idx: int) -> list[str]:
        if batch is None:
            return []
        preds = self.generate(batch)
        name = (batch.get("meta") or [{}])[0].get("eval_name") or f"set{dataloader_idx}"
        references = batch.get("references") or [[r] for r in batch["answers"]]
        for metric in self._set_metrics(split, name).values():
            metric.update(preds, references)
        self._eval_records.setdefault(name, []).extend(prediction_records(batch, preds, self.llm.tokenizer))
        return preds

    def _start_evaluation(self, split: str) -> None:
        """Reset the split's metric state and this run's prediction records."""
        for metrics in self.split_metrics[split].values():
            for metric in metrics.values():
                metric.reset()
        self._active_sets = {"val": {}, "test": {}}
        self._eval_records: dict[str, list[dict[str, Any]]] = {}
        self.eval_results: dict[str, dict[str, float]] = {}

    def on_validation_epoch_start(self) -> None:
        """Fresh metric state and prediction records for this validation run."""
        self._start_evaluation("val")

    def on_test_epoch_start(self) -> None:
        """Fresh metric state and prediction records for this test run."""
        self._start_evaluation("test")

    def _log_eval(self, split: str) -> None:
        for name, key in self._active_sets[split].items():
            scores = compute_scores(dict(self.split_metrics[split][key].items()))
            self.eval_results[name] = scores
            for score_name, score in scores.items():
                self.log(f"{split}/{score_name}_{name}", score, add_dataloader_idx=False, sync_dist=False)

    @property
    def eval_records(self) -> dict[str, list[dict[str, Any]]]:
        """This process's prediction records of the last validation/test run, per evaluation set."""
        return getattr(self, "_eval_records", {})

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
