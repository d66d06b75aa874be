"""Lightning model zoo for region- and pixel-level remote-sensing vision-language models.

The package imports lazily, as transformers does: `import rsvlm_zoo` loads no torch; the first use of a name
below imports the module that defines it (and `build_model`/`list_models` register the built-in families then).
`build_model` and `from_pretrained` are typed here, above the models, as returning `RegionVLM`: the registry and
the weight loaders below the models build any registered `LightningModule` and cannot name the class.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

__version__ = "0.1.0"

# public name -> module defining it
_LAZY = {
    "list_models": "rsvlm_zoo.registry",
    "register_model": "rsvlm_zoo.registry",
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
    from rsvlm_zoo.registry import list_models, register_model
    from rsvlm_zoo.weights.model_config import register_class


def build_model(
    name: str, pretrained: bool = False, checkpoint: str | Path | None = None, **overrides: Any
) -> RegionVLM:
    """Build a registered model in eval mode (see `rsvlm_zoo.registry.build_model` for the arguments).

    Args:
        name: Registered model name (see `list_models()`).
        pretrained: Load pretrained weights from local files or the local Hugging Face cache.
        checkpoint: Then load a Lightning checkpoint or an exported directory into it.
        **overrides: Constructor arguments overriding the registered defaults.

    Raises:
        UnknownModelError: naming the closest registered names.
    """
    from rsvlm_zoo.registry import build_model as build

    return cast("RegionVLM", build(name, pretrained=pretrained, checkpoint=checkpoint, **overrides))


def from_pretrained(path: str | Path) -> RegionVLM:
    """Build a model from an exported directory or an rsvlm_zoo Lightning checkpoint, in eval mode.

    See `rsvlm_zoo.weights.export.from_pretrained`.

    Raises:
        FileNotFoundError: when `path` does not exist.
        ValueError: when it is neither an export nor a checkpoint with the model's config.
    """
    from rsvlm_zoo.weights.export import from_pretrained as load

    return cast("RegionVLM", load(path))


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
