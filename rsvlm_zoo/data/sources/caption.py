"""Caption samples as prompt/answer conversations: the source of `CaptionDataModule` (Lightning-free)."""

from __future__ import annotations

import copy

import numpy as np

from rsvlm_zoo.data.schema import DataFormatError, Sample, Turn
from rsvlm_zoo.data.sources.base import SampleSource

CAPTION_PROMPT = "<image>\nGive a short description of this remote sensing image."
TRAIN_CAPTIONS = ("each", "random")


class CaptionSource(SampleSource):
    """Caption samples (`Sample.captions`) as prompt/answer conversations.

    With `per_caption`, entry j is one (image, caption) pair: the prompt answered by that caption, entries of
    one image consecutive (`starts`, `counts`). Without, entry i is image i asked the prompt with no answer,
    `meta["answer"]` its first caption and `meta["references"]` all of them (for evaluation). Regions are not
    given to the model. An image without captions becomes one entry that raises `DataFormatError` (an error,
    or a counted skip under `on_bad_sample="skip"`).

    Args:
        source: Samples from a caption reader (formats `karpathy`, `nwpu`).
        prompt: The question, with `<image>` once.
        per_caption: One entry per caption (training) instead of one per image (evaluation).
    """

    def __init__(self, source: SampleSource, prompt: str = CAPTION_PROMPT, per_caption: bool = True) -> None:
        self.source, self.prompt, self.per_caption = source, prompt, per_caption
        self._starts: np.ndarray | None = None
        self._counts: np.ndarray | None = None

    def _build(self) -> None:
        counts = np.array([max(1, len(self.source[i].captions)) for i in range(len(self.source))], dtype=np.int64)
        self._counts = counts
        self._starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    @property
    def starts(self) -> np.ndarray:
        """First entry of each image (per-caption mode)."""
        if self._starts is None:
            self._build()
        return self._starts  # type: ignore[return-value]

    @property
    def counts(self) -> np.ndarray:
        """Entries of each image (its caption count; 1 for an image without captions)."""
        if self._counts is None:
            self._build()
        return self._counts  # type: ignore[return-value]

    def __len__(self) -> int:
        return int(self.counts.sum()) if self.per_caption else len(self.source)

    def __getitem__(self, idx: int) -> Sample:
        if self.per_caption:
            image = int(np.searchsorted(self.starts, idx, side="right")) - 1
            k = idx - int(self.starts[image])
        else:
            image, k = idx, None
        sample = self.source[image]
        if not sample.captions:
            raise DataFormatError(
                f"{sample.where()}: no captions; CaptionDataModule reads caption datasets (formats karpathy, nwpu)"
            )
        out = copy.copy(sample)
        out.regions, out.region_refs = [], None
        out.meta = {**sample.meta, "references": list(sample.captions)}
        if k is None:
            out.conversation = [Turn("human", self.prompt)]
            out.meta["answer"] = sample.captions[0]
        else:
            out.conversation = [Turn("human", self.prompt), Turn("gpt", sample.captions[k])]
            out.meta["answer"] = sample.captions[k]
            out.sample_id = f"{sample.sample_id}#{k}"
        return out
