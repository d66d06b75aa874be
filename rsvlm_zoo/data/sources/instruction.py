"""InstructionSource: region instructions built on the fly for samples that only carry annotations."""

from __future__ import annotations

from typing import Any

from rsvlm_zoo.data.instructions import TASKS
from rsvlm_zoo.data.schema import Sample
from rsvlm_zoo.data.sources.base import SampleSource


class InstructionSource(SampleSource):
    """Region instructions built on the fly for samples that only carry annotations (COCO, DOTA, VOC, ...).

    Under `image_policy: tile` the data module tiles the inner source and builds the instructions per tile,
    so the questions name the tile's regions.

    Args:
        source: Annotated samples (regions with categories or texts).
        task: `category`, `region_caption` or `detailed_description` (see `rsvlm_zoo.data.instructions`).
        options: Keyword options of the task (`per_region`, `shuffle`, `seed`, `max_regions`).
    """

    def __init__(self, source: SampleSource, task: str = "category", options: dict[str, Any] | None = None) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown instruction task {task!r}; known: {sorted(TASKS)}")
        self.source, self.task, self.options = source, task, dict(options or {})

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, idx: int) -> Sample:
        return TASKS[self.task](self.source[idx], **self.options)

    def control(self) -> SampleSource | None:
        """The inner source's control with the same instructions, when it has one."""
        inner = self.source.control()
        return None if inner is None else InstructionSource(inner, self.task, self.options)

    def tiled(self, tile_size: int | tuple[int, int], overlap: int = 0, min_visible: float = 0.5) -> SampleSource:
        """Instructions built per tile of the tiled inner source."""
        from rsvlm_zoo.data.sources.tiled import tile_source

        return InstructionSource(tile_source(self.source, tile_size, overlap, min_visible), self.task, self.options)
