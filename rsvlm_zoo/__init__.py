"""Lightning model zoo for region- and pixel-level remote-sensing vision-language models.

The package imports lazily, as transformers does: `import rsvlm_zoo` loads no torch; the first use of a name
below imports the module that defines it (and `build_model`/`list_models` register the built-in families then).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module defining it
_LAZY = {
    "build_model": "rsvlm_zoo.registry",
    "list_models": "rsvlm_zoo.registry",
    "register_model": "rsvlm_zoo.registry",
    "from_pretrained": "rsvlm_zoo.weights.export",
    "register_class": "rsvlm_zoo.weights.model_config",
    "RegionVLM": "rsvlm_zoo.models.base",
}

__all__ = [
    "RegionVLM",
    "__version__",
    "build_model",
    "from_pretrained",
    "list_models",
    "register_class",
    "register_model",
]

if TYPE_CHECKING:
    from rsvlm_zoo.models.base import RegionVLM
    from rsvlm_zoo.registry import build_model, list_models, register_model
    from rsvlm_zoo.weights.export import from_pretrained
    from rsvlm_zoo.weights.model_config import register_class


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rsvlm_zoo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
