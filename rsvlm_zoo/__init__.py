"""Lightning model zoo for region- and pixel-level remote-sensing vision-language models."""

from typing import Any

from rsvlm_zoo.models.blocks.config import register_class
from rsvlm_zoo.registry import build_model, list_models, register_model

__version__ = "0.1.0"

__all__ = ["__version__", "build_model", "from_pretrained", "list_models", "register_class", "register_model"]


def from_pretrained(path: str) -> Any:
    """Build a model from an exported directory (`rsvlm export`) or an rsvlm_zoo Lightning checkpoint."""
    from rsvlm_zoo.export import from_pretrained as _from_pretrained

    return _from_pretrained(path)
