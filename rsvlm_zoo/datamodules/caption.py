"""CaptionDataModule: image-level captioning (RSICD, UCM, Sydney, RSITMD, NWPU) on RegionDataModule's machinery."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from rsvlm_zoo.data.sources.base import SampleSource
from rsvlm_zoo.data.sources.caption import CAPTION_PROMPT, TRAIN_CAPTIONS, CaptionSource
from rsvlm_zoo.datamodules.region import ProcessedDataset, RegionDataModule

__all__ = ["CAPTION_PROMPT", "CaptionDataModule", "CaptionSource", "OneCaptionPerImage"]


class OneCaptionPerImage(Sampler[int]):
    """Each image once per epoch, in random order, with one of its captions drawn at random.

    The draw depends only on `seed` and the epoch: `set_epoch` (called by Lightning) sets it, and each pass
    moves on to the next epoch by itself otherwise.

    Args:
        starts: First entry of each image.
        counts: Entries (captions) of each image.
        seed: Seed of the draws.
    """

    def __init__(self, starts: np.ndarray, counts: np.ndarray, seed: int = 0) -> None:
        self.starts, self.counts, self.seed, self.epoch = starts, counts, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the captions of `epoch` on the next pass."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.starts)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        order = rng.permutation(len(self.starts))
        picks = rng.integers(0, self.counts[order])
        return iter((self.starts[order] + picks).tolist())


class CaptionDataModule(RegionDataModule):
    """Image captioning: trains on (image, caption) pairs, evaluates each image against all its captions.

    Sources are caption samples, e.g. `AnnotationSource(format="karpathy", annotation=".../dataset_rsicd.json",
    split="train")`. Training asks `prompt` and supervises one caption; evaluation asks `prompt` once per
    image, and its batches carry `answers` (the first caption) and `references` (every caption of the image,
    for BLEU/METEOR/CIDEr). The model is attached as for `RegionDataModule`.

    Args:
        train: Training captions.
        val: Evaluation captions.
        test: Test captions (default `val`).
        prompt: The captioning question (with `<image>` once).
        train_captions: `each`: every caption is its own training sample (an epoch sees each image once per
            caption); `random`: one caption per image per epoch, drawn with `seed` (an epoch sees each image once).
        seed: Seed of the `random` draws.
        batch_size: Training batch size.
        eval_batch_size: Evaluation batch size (default: `batch_size`).
        num_workers: DataLoader workers.
        template: Conversation template (`vicuna_v1`, `osprey_v1`, `llava_v1`, `llama_2`, `plain`); None
            (default) takes the model family's template.
        max_length: Longest token sequence.
        image_policy: `squash` or `pad` (`tile` is for region data: a caption describes the whole image).
        on_bad_sample: `error` or `skip` (skips are counted in `batch["skipped"]` and logged).
    """

    eval_name = "captions"

    def __init__(
        self,
        train: SampleSource | None = None,
        val: SampleSource | None = None,
        test: SampleSource | None = None,
        prompt: str = CAPTION_PROMPT,
        train_captions: str = "each",
        seed: int = 0,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        template: str | None = None,
        max_length: int = 2048,
        image_policy: str = "squash",
        on_bad_sample: str = "error",
    ) -> None:
        if image_policy == "tile":
            raise ValueError(
                "image_policy 'tile' is for region data (a caption describes the whole image); use squash or pad"
            )
        if train_captions not in TRAIN_CAPTIONS:
            raise ValueError(f"train_captions must be one of {TRAIN_CAPTIONS}, got {train_captions!r}")
        if prompt.count("<image>") != 1:
            raise ValueError(f"prompt must contain <image> exactly once, got {prompt!r}")
        super().__init__(
            train=train,
            val=val,
            test=test,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            template=template,
            max_length=max_length,
            image_policy=image_policy,
            on_bad_sample=on_bad_sample,
            seed=seed,
        )
        self.prompt, self.train_captions = prompt, train_captions

    def _prepare(self, source: SampleSource, train: bool) -> SampleSource:
        """Captions as conversations: one per caption for training, one per image with all references else."""
        return CaptionSource(source, self.prompt, per_caption=train)

    def _train_sampler(self, dataset: ProcessedDataset) -> Sampler | None:
        """One random caption per image per epoch under `train_captions: random`; else every pair, shuffled."""
        if self.train_captions == "each":
            return None
        source: CaptionSource = dataset.source  # type: ignore[assignment]
        return OneCaptionPerImage(source.starts, source.counts, self.seed)
