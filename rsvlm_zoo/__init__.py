"""Lightning model zoo for region- and pixel-level remote-sensing vision-language models."""

import rsvlm_zoo.models  # noqa: F401  (registers the built-in families with the registry)
from rsvlm_zoo.registry import build_model, list_models, register_model
from rsvlm_zoo.weights.export import from_pretrained
from rsvlm_zoo.weights.model_config import register_class

__version__ = "0.1.0"

__all__ = ["__version__", "build_model", "from_pretrained", "list_models", "register_class", "register_model"]
