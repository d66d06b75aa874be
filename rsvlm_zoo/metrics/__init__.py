"""Caption, region and answer metrics as torchmetrics Metrics (coco-caption exact, DDP aware)."""

from rsvlm_zoo.metrics.caption import BLEU, METEOR, ROUGEL, SPICE, CaptionMetrics, CIDEr
from rsvlm_zoo.metrics.exact_match import ExactMatch
from rsvlm_zoo.metrics.grounding import GroundingAccuracy
from rsvlm_zoo.metrics.java import JavaNotFoundError
from rsvlm_zoo.metrics.semantic import SemanticIoU, SemanticSimilarity
from rsvlm_zoo.metrics.spice_scorer import SpiceModelsNotFoundError

__all__ = [
    "BLEU",
    "CIDEr",
    "METEOR",
    "ROUGEL",
    "SPICE",
    "CaptionMetrics",
    "ExactMatch",
    "GroundingAccuracy",
    "JavaNotFoundError",
    "SemanticIoU",
    "SemanticSimilarity",
    "SpiceModelsNotFoundError",
]
