"""Evaluation outputs: prediction files, metrics JSON and a markdown table, written from Lightning runs.

- `EvaluationWriter` (for `rsvlm test` / `validate`): after the run, every evaluation set's predictions go to
  `predictions_<set>.jsonl`, the scores the model computed to `metrics.json` and `metrics.md`.
- `PredictionWriter` (for `rsvlm predict`): one JSONL line per region/image as batches are generated.

Each line holds `sample_id`, `eval_set`, `prompt`, `answer` and `references`: what is needed to score it again
(`rsvlm eval`) or to look at it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from lightning.pytorch.utilities import rank_zero_info


def _gather(records: dict[str, list[dict[str, Any]]], trainer: L.Trainer) -> dict[str, list[dict[str, Any]]]:
    """Every process's records (each process scored a disjoint share), in process order."""
    if trainer.world_size <= 1 or not torch.distributed.is_initialized():
        return records
    shares: list[Any] = [None] * trainer.world_size
    torch.distributed.all_gather_object(shares, records)
    merged: dict[str, list[dict[str, Any]]] = {}
    for share in shares:
        for name, rows in share.items():
            merged.setdefault(name, []).extend(rows)
    return merged


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    """Scores as a markdown table: one row per evaluation set, one column per metric."""
    columns: list[str] = []
    for scores in results.values():
        columns += [c for c in scores if c not in columns]
    lines = ["| set | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, scores in results.items():
        cells = [f"{scores[c]:.4f}" if c in scores else "" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def strict_json(value: Any, **kwargs: Any) -> str:
    """`json.dumps` that writes strict JSON: a NaN or infinite number (an undefined score) becomes null."""

    def finite(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [finite(x) for x in v]
        return v

    return json.dumps(finite(value), allow_nan=False, **kwargs)


def write_evaluation(
    out_dir: Path, records: dict[str, list[dict[str, Any]]], results: dict[str, dict[str, float]]
) -> list[Path]:
    """Write `predictions_<set>.jsonl`, `metrics.json` and `metrics.md` under `out_dir`; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in records.items():
        path = out_dir / f"predictions_{name}.jsonl"
        path.write_text("".join(strict_json(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        written.append(path)
    (out_dir / "metrics.json").write_text(strict_json(results, indent=2) + "\n")
    (out_dir / "metrics.md").write_text(markdown_table(results))
    return [*written, out_dir / "metrics.json", out_dir / "metrics.md"]


class EvaluationWriter(Callback):
    """Writes predictions, metrics JSON and a markdown table after test (and optionally validation) runs.

    The records come from what each `test_step` / `validation_step` returned (`records` and `eval_set`, as
    `rsvlm_zoo.models.evaluating` returns them); the scores are the ones the module's metrics computed at the end
    of the epoch (`pl_module.eval_results`), so `metrics.json` is what the run logged.

    Args:
        output_dir: Directory to write; default `<trainer.default_root_dir>/eval`.
        on_validation: Also write after each validation run (overwriting the previous one).
    """

    def __init__(self, output_dir: str | None = None, on_validation: bool = False) -> None:
        self.output_dir, self.on_validation = output_dir, on_validation
        self.written: list[Path] = []
        self._records: dict[str, list[dict[str, Any]]] = {}

    def _collect(self, outputs: Any) -> None:
        if isinstance(outputs, dict) and outputs.get("eval_set") is not None:
            self._records.setdefault(str(outputs["eval_set"]), []).extend(outputs.get("records") or [])

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start this run's records afresh."""
        self._records = {}

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start this run's records afresh."""
        self._records = {}

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the batch's prediction records."""
        self._collect(outputs)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the batch's prediction records when validation runs are written."""
        if self.on_validation and not trainer.sanity_checking:
            self._collect(outputs)

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        records = _gather(self._records, trainer)
        if not trainer.is_global_zero:
            return
        results = getattr(pl_module, "eval_results", {})
        out = Path(self.output_dir or Path(trainer.default_root_dir) / "eval")
        self.written = write_evaluation(out, records, results)
        rank_zero_info(f"evaluation written to {out}\n" + markdown_table(results))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write after `trainer.test`."""
        self._write(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write after validation when `on_validation` is set (never during the sanity check)."""
        if self.on_validation and not trainer.sanity_checking:
            self._write(trainer, pl_module)


class PredictionWriter(BasePredictionWriter):
    """Streams `predict_step` records to JSONL, one line per region/image, as batches finish.

    Args:
        output: File to write; default `<trainer.default_root_dir>/predictions.jsonl`. Under several
            processes each writes its own share to `<stem>.rank<k>.jsonl`.
    """

    def __init__(self, output: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output = output
        self.path: Path | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Choose and truncate this process's output file."""
        if stage != "predict":
            return
        path = Path(self.output or Path(trainer.default_root_dir) / "predictions.jsonl")
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        self.path = path

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Append this batch's records."""
        assert self.path is not None
        with self.path.open("a", encoding="utf-8") as f:
            for record in prediction or []:
                f.write(strict_json(record, ensure_ascii=False) + "\n")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Say where the predictions went."""
        if self.path is not None:
            rank_zero_info(f"predictions written to {self.path}")
