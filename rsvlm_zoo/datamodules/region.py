"""RegionDataModule: region conversations from any source, prepared for the attached model.

Kept in one file (over 300 lines) on purpose: the DataModule with the dataset, collate wrapper and loaders only it
uses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, Sampler

from rsvlm_zoo.data.collate import RegionCollator
from rsvlm_zoo.data.images import decode
from rsvlm_zoo.data.processor import IMAGE_POLICIES, InputSpec, RegionProcessor, SkipSample
from rsvlm_zoo.data.schema import DataFormatError, Sample
from rsvlm_zoo.data.sources.base import SampleSource
from rsvlm_zoo.data.sources.resumable import EpochSeededSampler
from rsvlm_zoo.data.sources.streaming import StreamingSampler, StreamingSource
from rsvlm_zoo.data.sources.tiled import tile_source
from rsvlm_zoo.data.tiling import TileDropped, as_size

log = logging.getLogger(__name__)

# Errors that reading or processing one sample's files and geometry can raise (decoders, pycocotools, numpy):
# they are the sample's fault. Anything else (AttributeError, NameError, AssertionError, RuntimeError, ...) is
# a programming error and stops the run under either `on_bad_sample` setting.
SAMPLE_ERRORS: tuple[type[BaseException], ...] = (
    DataFormatError,
    SkipSample,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    ArithmeticError,
    OSError,
    MemoryError,
    RecursionError,
)


def sample_error(err: BaseException, where: str) -> DataFormatError:
    """`err` as a DataFormatError naming the record, unless its message already does."""
    if isinstance(err, DataFormatError):
        return err if "record " in str(err) else DataFormatError(f"{where}: {err}")
    return DataFormatError(f"{where}: {type(err).__name__}: {err}")


@dataclass(frozen=True)
class Dropped:
    """Placeholder item for a tile that the tiling rule dropped (counted in `batch["dropped_tiles"]`)."""

    reason: str


class ProcessedDataset(Dataset):
    """Decodes and processes samples lazily (in the worker), never caching decoded images.

    Args:
        source: Where samples come from.
        processor: Sample -> tensors.
        generation: Build prompts without answers (for evaluation); the reference goes to `answers` and, with
            every reference of the sample (`meta["references"]`, e.g. all captions of an image), to `references`.
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

    def __getitem__(self, idx: int) -> dict[str, Any] | Dropped | None:
        sample: Sample | None = None
        try:
            sample = self.source[idx]
            item = self.processor(sample, decode(sample.image), generation=self.generation)
        except TileDropped as err:
            log.debug("dropping tile %d: %s", idx, err)
            return Dropped(str(err))
        except SAMPLE_ERRORS as err:
            where = sample.where() if sample is not None else f"sample {idx} of {type(self.source).__name__}"
            if self.on_bad_sample == "error":
                clear = err if isinstance(err, SkipSample) else sample_error(err, where)
                if clear is err:
                    raise
                raise clear from err
            log.warning("skipping sample %d: %s", idx, sample_error(err, where))
            return None
        if self.generation:
            answers = [t.text for t in sample.conversation if t.role == "gpt"]
            item["answers"] = sample.meta.get("answer") or (answers[-1] if answers else "")
            item["references"] = list(sample.meta.get("references") or [item["answers"]])
            item["meta"] = {"eval_name": self.eval_name, "sample_id": sample.sample_id}
        return item


class SkippingCollator:
    """Drops skipped samples and dropped tiles, counting each.

    Skipped samples (None) are counted in `batch["skipped"]`, dropped tiles (`Dropped`) in
    `batch["dropped_tiles"]`: tiles are dropped by design, not for bad data, so they are not `skipped`.
    """

    def __init__(self, collate: RegionCollator) -> None:
        self.collate = collate

    def __call__(self, items: list[dict[str, Any] | Dropped | None]) -> dict[str, Any] | None:
        """Collate the kept items; None when no item was kept."""
        kept = [it for it in items if isinstance(it, dict)]
        if not kept:
            return None
        batch = self.collate(kept)
        batch["dropped_tiles"] = sum(isinstance(it, Dropped) for it in items)
        batch["skipped"] = len(items) - len(kept) - batch["dropped_tiles"]
        return batch


class RegionDataModule(L.LightningDataModule):
    """Region instruction data for a region VLM.

    The model is attached in `setup()` (from the trainer) or with `attach(model.input_spec())`, so the
    data layer learns tokenizer, input size and placeholder expansion without importing model code.

    Args:
        train: Training source (e.g. `SyntheticSource`, `AnnotationSource`, `InstructionSource`, `MixedSource`).
        val: Evaluation source; its samples are asked without answers and scored by exact match.
        test: Test source, scored like `val`.
        predict: Source answered by `rsvlm predict` (default: test, else val).
        batch_size: Training batch size.
        eval_batch_size: Evaluation batch size (default: `batch_size`).
        num_workers: DataLoader workers.
        template: Conversation template (`vicuna_v1`, `osprey_v1`, `llava_v1`, `llama_2`, `plain`); None
            (default) takes the model family's template.
        max_length: Longest token sequence.
        image_policy: `squash` (resize to the input), `pad` (pad to square, then resize) or `tile` (cut each
            scene into tiles of `tile_size` scene pixels with `TiledSource`, each tile one sample, scaled by
            input size / tile size and padded at the bottom/right when the scene is smaller than a tile).
        on_bad_sample: `error` or `skip` (skips are counted in `batch["skipped"]` and logged).
        mask_control: Also evaluate `val` with masks shuffled between regions (a mask-blind model scores the same).
        tile_size: Tile (height, width) or side in scene pixels for `tile`; default the model's input size (no
            resizing).
        tile_overlap: Pixels shared by neighbouring tiles.
        tile_min_visible: A cut object stays in a tile when at least this fraction of it is inside (see
            `rsvlm_zoo.data.tiling`); dropped tiles are counted in `batch["dropped_tiles"]`.
        seed: Seed of the training order (each epoch's permutation comes from seed + epoch; see
            `EpochSeededSampler`), which makes a run resumed mid-epoch train on the same batches. A packed
            `StreamingSource` read as it is (not wrapped) is ordered by its `StreamingSampler` instead: chunk-local
            order per (seed, epoch), one disjoint share per rank, exact mid-epoch resume also under DDP.
    """

    eval_name = "regions"

    def __init__(
        self,
        train: SampleSource | None = None,
        val: SampleSource | None = None,
        test: SampleSource | None = None,
        predict: SampleSource | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        template: str | None = None,
        max_length: int = 2048,
        image_policy: str = "squash",
        on_bad_sample: str = "error",
        mask_control: bool = False,
        tile_size: int | tuple[int, int] | None = None,
        tile_overlap: int = 0,
        tile_min_visible: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if image_policy not in IMAGE_POLICIES:
            raise ValueError(f"image_policy must be one of {IMAGE_POLICIES}, got {image_policy!r}")
        if on_bad_sample not in ("error", "skip"):
            raise ValueError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
        self.train_source, self.val_source, self.test_source = train, val, test
        self.predict_source = predict
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.template, self.max_length = num_workers, template, max_length
        self.image_policy, self.on_bad_sample, self.mask_control = image_policy, on_bad_sample, mask_control
        self.tile_size = None if tile_size is None else as_size(tile_size)
        self.tile_overlap, self.tile_min_visible = tile_overlap, tile_min_visible
        self.seed = seed
        self.spec: InputSpec | None = None

    def attach(self, spec: InputSpec) -> None:
        """Prepare inputs for the model described by `spec`."""
        self.spec = spec

    def setup(self, stage: str | None = None) -> None:
        """Take the input spec from the trainer's model when none was attached."""
        if self.spec is None:
            if self.trainer is None or self.trainer.lightning_module is None:
                raise RuntimeError(f"{type(self).__name__} needs a model: call attach(model.input_spec()) first")
            self.attach(self.trainer.lightning_module.input_spec())

    def _tile_size(self) -> tuple[int, int]:
        assert self.spec is not None, "call setup() or attach() first"
        return self.tile_size or tuple(self.spec.input_size)  # type: ignore[return-value]

    def _processor(self) -> RegionProcessor:
        assert self.spec is not None, "call setup() or attach() first"
        tile = self._tile_size() if self.image_policy == "tile" else None
        return RegionProcessor(self.spec, self.template, self.max_length, self.image_policy, tile)  # type: ignore[arg-type]

    def _prepare(self, source: SampleSource, train: bool) -> SampleSource:
        """The source as the loader reads it: tiled under `image_policy: tile` (subclasses add their wrapping)."""
        if self.image_policy == "tile":
            return tile_source(source, self._tile_size(), self.tile_overlap, self.tile_min_visible)
        return source

    def _train_sampler(self, dataset: ProcessedDataset) -> Sampler | None:
        """Every sample once per epoch, in an order fixed by (seed, epoch), so a resumed run sees the same batches.

        A `StreamingSource` gets its `StreamingSampler` (chunk-local order, this rank's disjoint share of the
        epoch, rank and world size from the trainer); every other source an `EpochSeededSampler`, whose order
        Lightning shares between processes with its distributed sampler.
        """
        if isinstance(dataset.source, StreamingSource):
            trainer = self.trainer
            rank = getattr(trainer, "global_rank", None) if trainer is not None else None
            world = getattr(trainer, "world_size", None) if trainer is not None else None
            return StreamingSampler(dataset.source, self.seed, rank=rank, world_size=world)
        return EpochSeededSampler(len(dataset), self.seed)

    def _resume_position(self, sampler: Sampler | None) -> None:
        """When Lightning resumes mid-epoch, start the sampler after the batches already trained on.

        Lightning restores the loop counters before it asks for the training loader; without this the resumed
        epoch would start over from its first batch. Under several processes Lightning wraps an
        `EpochSeededSampler` in its distributed one, so exact mid-epoch resumption is single-process only for
        those (Lightning warns otherwise); a `StreamingSampler` is this rank's share already (Lightning keeps
        it), so each rank resumes after its own batches.
        """
        trainer = self.trainer
        if trainer is None or not hasattr(sampler, "resume_after"):
            return
        if getattr(trainer, "world_size", 1) > 1 and not isinstance(sampler, StreamingSampler):
            return
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        # `processed`, not `completed`: a checkpoint saved in on_train_batch_end counts its batch as processed only.
        done = progress.processed
        if trainer.fit_loop.restarting and done > 0:
            sampler.set_epoch(trainer.current_epoch)
            sampler.resume_after(min(len(sampler), done * self.batch_size))
            log.info("resuming epoch %d after its first %d batches", trainer.current_epoch, done)

    def _loader(self, source: SampleSource, train: bool, name: str | None = None) -> DataLoader:
        pad = self.spec.tokenizer.pad_token_id  # type: ignore[union-attr]
        dataset = ProcessedDataset(
            self._prepare(source, train),
            self._processor(),
            generation=not train,
            on_bad_sample=self.on_bad_sample,
            eval_name=name or self.eval_name,
        )
        collate = SkippingCollator(RegionCollator(pad, padding_side="right" if train else "left"))
        sampler = self._train_sampler(dataset) if train else self._eval_sampler(dataset)
        if train:
            self._resume_position(sampler)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train and sampler is None,
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
            raise ValueError(f"{type(self).__name__} has no train source; set data.init_args.train")
        return self._loader(self.train_source, train=True)

    def _eval_loaders(self, source: SampleSource | None, kind: str) -> list[DataLoader]:
        if source is None:
            raise ValueError(f"{type(self).__name__} has no {kind} source; set data.init_args.{kind}")
        loaders = [self._loader(source, train=False)]
        control = source.control() if self.mask_control else None
        if self.mask_control and control is None:
            raise ValueError(f"mask_control is on but the {kind} source cannot shuffle masks")
        if control is not None:
            loaders.append(self._loader(control, train=False, name="shuffled_masks"))
        return loaders

    def val_dataloader(self) -> list[DataLoader]:
        """Prompt batches scored by exact match (plus the shuffled-mask control when enabled).

        Without a val source there is nothing to validate on: no loaders, and Lightning skips validation.
        """
        if self.val_source is None:
            return []
        return self._eval_loaders(self.val_source, "val")

    def test_dataloader(self) -> list[DataLoader]:
        """As `val_dataloader`, for the test source."""
        return self._eval_loaders(self.test_source or self.val_source, "test")

    def predict_dataloader(self) -> DataLoader:
        """Prompt batches of the predict source (else test, else val) for `rsvlm predict`."""
        source = self.predict_source or self.test_source or self.val_source
        if source is None:
            raise ValueError(f"{type(self).__name__} has no predict source; set data.init_args.predict")
        return self._loader(source, train=False)
