"""Lightning callbacks that draw pictures of a run: region figures during validation, training curves at the end.

`RegionFigureLogger` reads the validation batch Lightning hands to `on_validation_batch_end` (the
`RegionCollator` batch: `pixel_values`, `region_masks` or `region_boxes`, `region_image_index`, `answers`,
`sample_ids`) and the model's generated answers from what `validation_step` returned:

    `{"predictions": list[str]}` - the answers generated for that batch, one per sequence, in batch order
    (`RegionVLM.validation_step` returns it).

Without them (or when their number does not match the batch) figures show the reference only.

Kept in one file (over 300 lines) on purpose: the two callbacks share the batch-to-figure helpers defined here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from PIL import Image

from rsvlm_zoo.viz.curves import plot_curves
from rsvlm_zoo.viz.regions import render_regions

PREDICTIONS_KEY = "predictions"  # what validation_step returns the generated answers under


@dataclass
class RegionExample:
    """One validation sequence ready to draw.

    Attributes:
        image: HxWx3 uint8 model-input image (de-normalised).
        regions: The sequence's regions: HxW boolean masks or (x1, y1, x2, y2) boxes in `image` pixels, each
            once (a question that names a region again, as Osprey-style prompts do, does not add it twice).
        prediction: The model's answer, when the module exposes it.
        reference: The reference answer.
        sample_id: The sample's id.
        asked: 1-based number of the region the last question names again, when it does.
    """

    image: np.ndarray
    regions: list[Any]
    prediction: str | None
    reference: str | None
    sample_id: str
    asked: int | None = None


def run_dir(trainer: L.Trainer) -> Path:
    """The run's directory: the logger's `log_dir`, else `trainer.default_root_dir`.

    Read from the logger directly: `trainer.log_dir` broadcasts from rank 0, a collective that would hang when
    only rank 0 asks (these callbacks draw on rank 0 alone).
    """
    logger = trainer.logger
    log_dir = getattr(logger, "log_dir", None) if logger is not None else None
    return Path(log_dir or trainer.default_root_dir)


def denormalise(pixel_values: Any, mean: Sequence[float] | None, std: Sequence[float] | None) -> np.ndarray:
    """(3, H, W) normalised tensor/array -> HxWx3 uint8; min-max stretched when mean/std are unknown."""
    x = pixel_values.detach().float().cpu().numpy() if hasattr(pixel_values, "detach") else np.asarray(pixel_values)
    x = x.astype(np.float32).transpose(1, 2, 0)
    if mean is not None and std is not None:
        x = x * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    else:
        lo, hi = float(x.min()), float(x.max())
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return np.rint(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def examples_from_batch(
    batch: dict[str, Any],
    predictions: Sequence[str] | None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[RegionExample]:
    """Split a collated generation batch into per-sequence `RegionExample`s.

    Args:
        batch: A `RegionCollator` batch (optionally with `sequence_image_index` mapping sequences to images).
        predictions: One generated answer per sequence, or None.
        mean: Normalisation mean of `pixel_values` (None: min-max stretch).
        std: Normalisation std of `pixel_values`.
        limit: Most examples to return.
    """
    total = len(batch["input_ids"]) if "input_ids" in batch else len(batch.get("answers") or [])
    n = total if limit is None else min(total, limit)
    if predictions is not None and len(predictions) != total:
        predictions = None  # stale or foreign: better no answer than a wrong one
    seq_image = batch.get("sequence_image_index")
    region_seq = _numpy(batch["region_image_index"]) if "region_image_index" in batch else np.zeros(0, int)
    masks = _numpy(batch["region_masks"]) if batch.get("region_masks") is not None else None
    boxes = _numpy(batch["region_boxes"]) if batch.get("region_boxes") is not None else None
    answers, ids = batch.get("answers") or [], batch.get("sample_ids") or []
    out = []
    for i in range(n):
        image_index = int(seq_image[i]) if seq_image is not None else i
        regions: list[Any] = []
        asked = None
        for r in np.flatnonzero(region_seq == i):
            if masks is not None:
                mask = masks[r] >= 0.5
                region: Any = mask if mask.any() else masks[r] > 0
            elif boxes is not None:
                region = tuple(float(v) for v in boxes[r])
            else:
                continue
            same = [k for k, earlier in enumerate(regions) if _same_region(earlier, region)]
            if same:  # the question names a listed region again: draw it once, under its own number
                asked = same[0] + 1
            else:
                regions.append(region)
        out.append(
            RegionExample(
                image=denormalise(batch["pixel_values"][image_index], mean, std),
                regions=regions,
                prediction=predictions[i] if predictions is not None else None,
                reference=answers[i] if i < len(answers) else None,
                sample_id=str(ids[i]) if i < len(ids) else str(i),
                asked=asked,
            )
        )
    return out


def _same_region(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and bool(np.array_equal(a, b))
    return not isinstance(a, np.ndarray) and not isinstance(b, np.ndarray) and tuple(a) == tuple(b)


def _upscale(example: RegionExample, display_size: int) -> tuple[np.ndarray, list[Any]]:
    """Enlarge small model inputs by an integer factor so text and tags have room."""
    h, w = example.image.shape[:2]
    f = max(1, display_size // max(h, w))
    if f == 1:
        return example.image, example.regions
    image = np.asarray(Image.fromarray(example.image).resize((w * f, h * f), Image.Resampling.BICUBIC))
    regions = [
        np.repeat(np.repeat(r, f, axis=0), f, axis=1) if isinstance(r, np.ndarray) else tuple(v * f for v in r)
        for r in example.regions
    ]
    return image, regions


def render_example(example: RegionExample, display_size: int = 384) -> Image.Image:
    """The figure of one validation sequence: its regions, then the sample id, model answer and reference."""
    image, regions = _upscale(example, display_size)
    notes = [f"sample {example.sample_id}" + (f", asked about region {example.asked}" if example.asked else "")]
    if example.prediction is not None:
        notes.append(f"model: {example.prediction}")
    if example.reference is not None:
        notes.append(f"ref: {example.reference}")
    return render_regions(image, regions, notes=notes, panel=True)


def log_figures(trainer: L.Trainer, figures: Sequence[Image.Image], tag: str, stem: str) -> list[Path]:
    """Send figures to every logger with `experiment.add_image` (TensorBoard); else save PNGs.

    PNGs go to `<run_dir>/figures/<stem>_<k>.png`.

    Returns:
        The PNG files written (empty when a logger took the figures).
    """
    logged = False
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if callable(getattr(experiment, "add_image", None)):
            for k, figure in enumerate(figures):
                experiment.add_image(f"{tag}/{k}", np.asarray(figure), trainer.global_step, dataformats="HWC")
            logged = True
    if logged:
        return []
    folder = run_dir(trainer) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, figure in enumerate(figures):
        path = folder / f"{stem}_{k}.png"
        figure.save(path)
        paths.append(path)
    return paths


def _normalisation(pl_module: L.LightningModule) -> tuple[Sequence[float] | None, Sequence[float] | None]:
    spec = getattr(pl_module, "input_spec", None)
    if not callable(spec):
        return None, None
    try:
        spec = spec()
    except Exception:  # noqa: BLE001 - a module without a usable spec still gets stretched figures
        return None, None
    return getattr(spec, "mean", None), getattr(spec, "std", None)


class RegionFigureLogger(L.Callback):
    """Draw a few validation samples (scene, regions, model answer, reference) every few epochs.

    Figures go to every logger that has `experiment.add_image` (TensorBoard) under `tag/k`; when none does,
    they are saved as `<trainer.log_dir or default_root_dir>/figures/epoch<E>_<k>.png`. The model's answers
    are what `validation_step` returned under `predictions` (see the module docstring). Only rank 0 draws, and the
    sanity check is skipped.

    Args:
        num_samples: Sequences drawn per validation run (the first ones of the run).
        every_n_epochs: Draw after epochs where `(epoch + 1) % every_n_epochs == 0`.
        display_size: Model inputs smaller than this are enlarged (integer factor) before drawing.
        tag: Image tag prefix for loggers.
    """

    def __init__(
        self, num_samples: int = 4, every_n_epochs: int = 1, display_size: int = 384, tag: str = "val/regions"
    ) -> None:
        if num_samples < 1 or every_n_epochs < 1:
            raise ValueError(f"num_samples and every_n_epochs must be >= 1, got {num_samples}, {every_n_epochs}")
        self.num_samples, self.every_n_epochs = num_samples, every_n_epochs
        self.display_size, self.tag = display_size, tag
        self._examples: list[RegionExample] = []
        self._active = False
        self.last_paths: list[Path] = []

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Decide whether this run draws, and start collecting."""
        self._examples = []
        due = (trainer.current_epoch + 1) % self.every_n_epochs == 0
        self._active = due and not trainer.sanity_checking and trainer.is_global_zero

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the first sequences of the run with the module's answers for them."""
        if not self._active or not isinstance(batch, dict) or len(self._examples) >= self.num_samples:
            return
        mean, std = _normalisation(pl_module)
        predictions = outputs.get(PREDICTIONS_KEY) if isinstance(outputs, dict) else None
        room = self.num_samples - len(self._examples)
        self._examples += examples_from_batch(batch, predictions, mean, std, limit=room)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Draw and log (or save) the collected examples."""
        if not self._active or not self._examples:
            return
        figures = [render_example(e, self.display_size) for e in self._examples]
        self.last_paths = log_figures(trainer, figures, self.tag, f"epoch{trainer.current_epoch:03d}")
        self._examples = []


def _as_float(value: Any) -> float | None:
    if value is None:
        return None
    if hasattr(value, "detach"):
        if value.numel() != 1:
            return None
        value = value.detach().float().cpu().item()
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class TrainingCurvePlotter(L.Callback):
    """At the end of `fit`, write a PNG plot of the training loss and validation metrics over steps.

    The loss is recorded after every training batch from `trainer.callback_metrics[loss_key]` (what the
    module logs), falling back to the step's `outputs["loss"]` (times the gradient-accumulation factor);
    every metric whose name starts with `val_prefix` is recorded after each validation run (not the sanity
    check). The plot, drawn with Pillow, goes to `<trainer.log_dir or default_root_dir>/<filename>` on rank 0.

    Args:
        filename: File name of the plot.
        loss_key: The logged training-loss name.
        val_prefix: Prefix of the validation metrics to plot.
    """

    def __init__(
        self, filename: str = "training_curves.png", loss_key: str = "train/loss", val_prefix: str = "val/"
    ) -> None:
        self.filename, self.loss_key, self.val_prefix = filename, loss_key, val_prefix
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.path: Path | None = None

    def record(self, name: str, step: int, value: Any) -> None:
        """Add one (step, value) point to series `name`; missing or non-finite values are ignored."""
        number = _as_float(value)
        if number is not None:
            self.history.setdefault(name, []).append((int(step), number))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start a fresh history."""
        self.history, self.path = {}, None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Record the step's training loss (nothing for a batch the module passed over)."""
        if outputs is None:
            return
        value = trainer.callback_metrics.get(self.loss_key)
        if value is None:
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            number = _as_float(loss)
            value = None if number is None else number * trainer.accumulate_grad_batches
        self.record(self.loss_key, trainer.global_step, value)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Record the validation metrics of this run (after the module logged its epoch-end metrics)."""
        if trainer.sanity_checking:
            return
        for name, value in sorted(trainer.callback_metrics.items()):
            if name.startswith(self.val_prefix):
                self.record(name, trainer.global_step, value)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write the plot (rank 0, when anything was recorded)."""
        if not trainer.is_global_zero or not self.history:
            return
        series = {self.loss_key: self.history.get(self.loss_key, [])} if self.loss_key in self.history else {}
        series.update({k: v for k, v in self.history.items() if k != self.loss_key})
        folder = run_dir(trainer)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / self.filename
        plot_curves(series).save(self.path)
