"""LightningDataModules and the sample sources they read."""

from rsvlm_zoo.datamodules.caption import CaptionDataModule, CaptionSource
from rsvlm_zoo.datamodules.instruction import InstructionSource
from rsvlm_zoo.datamodules.mixed import MixedSource
from rsvlm_zoo.datamodules.region import RegionDataModule
from rsvlm_zoo.datamodules.sources import AnnotationSource, SampleSource, SyntheticSource
from rsvlm_zoo.datamodules.tiled import TiledSource

__all__ = [
    "AnnotationSource",
    "CaptionDataModule",
    "CaptionSource",
    "InstructionSource",
    "MixedSource",
    "RegionDataModule",
    "SampleSource",
    "SyntheticSource",
    "TiledSource",
]
