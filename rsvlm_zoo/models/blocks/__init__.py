"""Swappable blocks by role: encoders, extractors, projectors, LLMs."""

from rsvlm_zoo.models.blocks.box_extractor import BoxRegionEncoder
from rsvlm_zoo.models.blocks.encoders import (
    ConvNeXtCLIPEncoder,
    EfficientNetLiteEncoder,
    VisionEncoder,
    ViTCLIPEncoder,
)
from rsvlm_zoo.models.blocks.llms import HFCausalLM
from rsvlm_zoo.models.blocks.mask_extractor import MaskAwareExtractor
from rsvlm_zoo.models.blocks.projectors import MLPProjector
from rsvlm_zoo.models.blocks.regions import RegionBatch, RegionExtractor

__all__ = [
    "BoxRegionEncoder",
    "ConvNeXtCLIPEncoder",
    "EfficientNetLiteEncoder",
    "HFCausalLM",
    "MLPProjector",
    "MaskAwareExtractor",
    "RegionBatch",
    "RegionExtractor",
    "ViTCLIPEncoder",
    "VisionEncoder",
]
