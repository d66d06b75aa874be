"""Sample sources a DataModule draws from: annotation files in public formats, or generated scenes."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from rsvlm_zoo.data.schema import Sample
from rsvlm_zoo.data.synthetic import SyntheticRegionScenes

log = logging.getLogger(__name__)


class SampleSource:
    """Indexable collection of `Sample`s; subclasses fill `__len__` and `__getitem__`."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, idx: int) -> Sample:
        raise NotImplementedError

    def control(self) -> SampleSource | None:
        """The same samples with masks shuffled between regions, when the source can make that control."""
        return None


class SyntheticSource(SampleSource):
    """Generated remote-sensing scenes (see `SyntheticRegionScenes` for the arguments)."""

    def __init__(
        self,
        num_scenes: int = 1000,
        seed: int = 0,
        side: int = 128,
        min_objects: int = 2,
        max_objects: int = 4,
        one_question_per_sample: bool = False,
        task: str = "region_qa",
    ) -> None:
        self.scenes = SyntheticRegionScenes(
            num_scenes, seed, side, min_objects, max_objects, one_question_per_sample, task=task
        )

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, idx: int) -> Sample:
        return self.scenes[idx]

    def control(self) -> SampleSource:
        """Masks permuted between the regions of each scene; a mask-blind model scores the same on it."""
        other = copy.copy(self)
        other.scenes = copy.copy(self.scenes)
        other.scenes.shuffle_masks = True
        return other


class AnnotationSource(SampleSource):
    """Samples read from an annotation file by one of the registered readers.

    Args:
        format: Reader name (`osprey`, `coco`, `mgimm-region`, ... see `rsvlm data check --help`).
        annotation: Annotation file or directory.
        images: Image directory (when the format needs one).
        split: Split to keep, for formats that define splits.
        options: Further reader options.
    """

    def __init__(
        self,
        format: str,
        annotation: str,
        images: str | None = None,
        split: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        from rsvlm_zoo.data.readers import read_annotations

        self.samples = read_annotations(format, Path(annotation), images, split, **(options or {}))
        if not self.samples:
            raise ValueError(f"{annotation}: no samples for split {split!r} in format {format!r}")
        log.info("%s: %d samples", annotation, len(self.samples))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int) -> Sample:
        return self.samples[idx]
