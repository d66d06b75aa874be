"""RegionDataModule: region conversations from any source, prepared for the attached model."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from rsvlm_zoo.data.collate import RegionCollator
from rsvlm_zoo.data.processor import InputSpec, RegionProcessor, SkipSample
from rsvlm_zoo.data.schema import DataFormatError, Sample
from rsvlm_zoo.datamodules.sources import SampleSource

log = logging.getLogger(__name__)


class ProcessedDataset(Dataset):
    """Decodes and processes samples lazily (in the worker), never caching decoded images.

    Args:
        source: Where samples come from.
        processor: Sample -> tensors.
        generation: Build prompts without answers (for evaluation); the reference goes to `answers`.
        on_bad_sample: "error" raises the clear error; "skip" drops the sample, counted in the batch.
        eval_name: Name under which evaluation metrics of this set are logged.
    """

    def __init__(
        self,
        source: SampleSource,
        processor: RegionProcessor,
        generation: bool = False,
        on_bad_sample: str = "error",
        eval_name: str = "regions",
    ) -> None:
        if on_bad_sample not in ("error", "skip"):
            raise ValueError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
        self.source, self.processor = source, processor
        self.generation, self.on_bad_sample, self.eval_name = generation, on_bad_sample, eval_name

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, idx: int) -> dict[str, Any] | None:
        sample: Sample = self.source[idx]
        try:
            item = self.processor(sample, self._image(sample), generation=self.generation)
        except (DataFormatError, SkipSample) as err:
            if self.on_bad_sample == "error":
                raise
            log.warning("skipping sample %d: %s", idx, err)
            return None
        if self.generation:
            answers = [t.text for t in sample.conversation if t.role == "gpt"]
            item["answers"] = sample.meta.get("answer") or (answers[-1] if answers else "")
            item["meta"] = {"eval_name": self.eval_name, "sample_id": sample.sample_id}
        return item

    @staticmethod
    def _image(sample: Sample) -> np.ndarray:
        if isinstance(sample.image, np.ndarray):
            return sample.image
        from rsvlm_zoo.data.images import load_image

        return load_image(sample.image)


class SkippingCollator:
    """Drops skipped samples (None) and records how many in `batch["skipped"]`."""

    def __init__(self, collate: RegionCollator) -> None:
        self.collate = collate

    def __call__(self, items: list[dict[str, Any] | None]) -> dict[str, Any] | None:
        """Collate the kept items; None when every item was skipped."""
        kept = [it for it in items if it is not None]
        if not kept:
            return None
        batch = self.collate(kept)
        batch["skipped"] = len(items) - len(kept)
        return batch


class RegionDataModule(L.LightningDataModule):
    """Region instruction data for a region VLM.

    The model is attached in `setup()` (from the trainer) or with `attach(model.input_spec())`, so the
    data layer learns tokenizer, input size and placeholder expansion without importing model code.

    Args:
        train: Training source (e.g. `SyntheticSource` or `AnnotationSource`).
        val: Evaluation source; its samples are asked without answers and scored by exact match.
        test: Test source, scored like `val`.
        batch_size: Training batch size.
        eval_batch_size: Evaluation batch size (default: `batch_size`).
        num_workers: DataLoader workers.
        template: Conversation template (`vicuna_v1`, `llama_2`, `plain`).
        max_length: Longest token sequence.
        image_policy: `squash` or `pad`.
        on_bad_sample: `error` or `skip` (skips are counted and logged).
        mask_control: Also evaluate `val` with masks shuffled between regions (a mask-blind model scores the same).
    """

    def __init__(
        self,
        train: SampleSource | None = None,
        val: SampleSource | None = None,
        test: SampleSource | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        template: str = "vicuna_v1",
        max_length: int = 2048,
        image_policy: str = "squash",
        on_bad_sample: str = "error",
        mask_control: bool = False,
    ) -> None:
        super().__init__()
        self.train_source, self.val_source, self.test_source = train, val, test
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.template, self.max_length = num_workers, template, max_length
        self.image_policy, self.on_bad_sample, self.mask_control = image_policy, on_bad_sample, mask_control
        self.spec: InputSpec | None = None

    def attach(self, spec: InputSpec) -> None:
        """Prepare inputs for the model described by `spec`."""
        self.spec = spec

    def setup(self, stage: str | None = None) -> None:
        """Take the input spec from the trainer's model when none was attached."""
        if self.spec is None:
            if self.trainer is None or self.trainer.lightning_module is None:
                raise RuntimeError("RegionDataModule needs a model: call attach(model.input_spec()) first")
            self.attach(self.trainer.lightning_module.input_spec())

    def _processor(self) -> RegionProcessor:
        assert self.spec is not None, "call setup() or attach() first"
        return RegionProcessor(self.spec, self.template, self.max_length, self.image_policy)  # type: ignore[arg-type]

    def _loader(self, source: SampleSource, train: bool, name: str = "regions") -> DataLoader:
        pad = self.spec.tokenizer.pad_token_id  # type: ignore[union-attr]
        dataset = ProcessedDataset(
            source, self._processor(), generation=not train, on_bad_sample=self.on_bad_sample, eval_name=name
        )
        collate = SkippingCollator(RegionCollator(pad, padding_side="right" if train else "left"))
        sampler = None if train else self._eval_sampler(dataset)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(0),
        )

    def _eval_sampler(self, dataset: ProcessedDataset) -> UnrepeatedDistributedSampler | None:
        """Under several processes, each scores a disjoint share of the evaluation set, every sample once.

        Lightning's default distributed sampler pads the shares to equal length by repeating samples, which
        would count those samples twice in the gathered metrics.
        """
        trainer = self.trainer
        world = getattr(trainer, "world_size", 1) if trainer is not None else 1
        if world <= 1:
            return None
        if len(dataset) < world:
            raise ValueError(
                f"the evaluation set has {len(dataset)} sample(s) for {world} processes; each process needs one"
            )
        return UnrepeatedDistributedSampler(dataset, num_replicas=world, rank=trainer.global_rank, shuffle=False)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        if self.train_source is None:
            raise ValueError("RegionDataModule has no train source; set data.init_args.train")
        return self._loader(self.train_source, train=True)

    def _eval_loaders(self, source: SampleSource | None, kind: str) -> list[DataLoader]:
        if source is None:
            raise ValueError(f"RegionDataModule has no {kind} source; set data.init_args.{kind}")
        loaders = [self._loader(source, train=False, name="regions")]
        control = source.control() if self.mask_control else None
        if self.mask_control and control is None:
            raise ValueError(f"mask_control is on but the {kind} source cannot shuffle masks")
        if control is not None:
            loaders.append(self._loader(control, train=False, name="shuffled_masks"))
        return loaders

    def val_dataloader(self) -> list[DataLoader]:
        """Prompt batches scored by exact match (plus the shuffled-mask control when enabled)."""
        return self._eval_loaders(self.val_source, "val")

    def test_dataloader(self) -> list[DataLoader]:
        """As `val_dataloader`, for the test source."""
        return self._eval_loaders(self.test_source or self.val_source, "test")
