"""LightningDataModules and the sample sources they read."""

from rsvlm_zoo.datamodules.region import RegionDataModule
from rsvlm_zoo.datamodules.sources import AnnotationSource, SampleSource, SyntheticSource

__all__ = ["AnnotationSource", "RegionDataModule", "SampleSource", "SyntheticSource"]
