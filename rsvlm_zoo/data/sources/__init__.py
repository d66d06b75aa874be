"""Sample sources: indexable lists of `Sample`s (read, generated, tiled, mixed), free of Lightning."""

from rsvlm_zoo.data.sources.base import AnnotationSource, SampleSource, SyntheticSource
from rsvlm_zoo.data.sources.caption import CaptionSource
from rsvlm_zoo.data.sources.instruction import InstructionSource
from rsvlm_zoo.data.sources.mixed import MixedSource
from rsvlm_zoo.data.sources.streaming import StreamingSampler, StreamingSource
from rsvlm_zoo.data.sources.tiled import TiledSource

__all__ = [
    "AnnotationSource",
    "CaptionSource",
    "InstructionSource",
    "MixedSource",
    "SampleSource",
    "StreamingSampler",
    "StreamingSource",
    "SyntheticSource",
    "TiledSource",
]
