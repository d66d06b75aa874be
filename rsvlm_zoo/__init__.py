"""Lightning model zoo for region- and pixel-level remote-sensing vision-language models."""

from rsvlm_zoo.registry import build_model, list_models, register_model

__version__ = "0.1.0"

__all__ = ["__version__", "build_model", "list_models", "register_model"]
