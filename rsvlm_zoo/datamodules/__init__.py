"""LightningDataModules; the sample sources they read live in `rsvlm_zoo.data.sources` (re-exported here)."""

from rsvlm_zoo.data.sources import (
    AnnotationSource,
    CaptionSource,
    InstructionSource,
    MixedSource,
    SampleSource,
    StreamingSampler,
    StreamingSource,
    SyntheticSource,
    TiledSource,
)
from rsvlm_zoo.datamodules.caption import CaptionDataModule
from rsvlm_zoo.datamodules.region import RegionDataModule

__all__ = [
    "AnnotationSource",
    "CaptionDataModule",
    "CaptionSource",
    "InstructionSource",
    "MixedSource",
    "RegionDataModule",
    "SampleSource",
    "StreamingSampler",
    "StreamingSource",
    "SyntheticSource",
    "TiledSource",
]
