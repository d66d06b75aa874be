"""Model registry: register_model / build_model / list_models, as timm does it.

The registry imports no model: each family's module registers its members when it is imported. The built-in
families (`rsvlm_zoo.models`) are imported by the first `build_model` or `list_models` call, so `import rsvlm_zoo`
stays light; a family of one's own registers by being imported before that call, as with timm.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import lightning as L

from rsvlm_zoo.weights.export import load_weights

_MODELS: dict[str, Callable[..., L.LightningModule]] = {}
F = TypeVar("F", bound=Callable[..., L.LightningModule])
BUILTIN_FAMILIES = "rsvlm_zoo.models"


def _import_builtin_families() -> None:
    """Import the built-in families once, which registers their members."""
    importlib.import_module(BUILTIN_FAMILIES)


BLOCKS = ("encoder", "extractor", "projector", "llm")


def merge_overrides(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A variant's defaults with `build_model`'s overrides: block arguments merge key by key, the rest replace.

    `build_model("mgimm_tiny", encoder={"input_size": (224, 224)})` keeps the variant's other encoder arguments.
    """
    merged = {**defaults, **{k: v for k, v in overrides.items() if k not in BLOCKS}}
    for block in BLOCKS:
        if block in defaults or block in overrides:
            merged[block] = {**defaults.get(block, {}), **overrides.get(block, {})}
    return merged


class UnknownModelError(KeyError):
    """The requested model name is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def register_model(fn: F) -> F:
    """Register a function `name(pretrained=False, **overrides) -> LightningModule` under its own name.

    Raises:
        ValueError: when the name is already taken.
    """
    name = fn.__name__
    if name in _MODELS and _MODELS[name] is not fn:
        raise ValueError(f"model {name!r} is already registered (by {_MODELS[name].__module__})")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by a glob such as `"aquila*"`."""
    _import_builtin_families()
    names = sorted(_MODELS)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def build_model(
    name: str, pretrained: bool = False, checkpoint: str | Path | None = None, **overrides: Any
) -> L.LightningModule:
    """Build a registered model, in eval mode as Hugging Face models load (training switches the mode itself).

    A `None` override switches a setting off where the model accepts `None` for it (`lora=None`: no LoRA;
    `encoder_dtype=None`: the model's dtype); for any other argument it keeps the variant's value, so callers can
    pass optional command-line values.

    Args:
        name: Registered model name (see `list_models()`).
        pretrained: Load pretrained weights from local files or the local Hugging Face cache.
        checkpoint: Then load a Lightning checkpoint or an exported directory (`rsvlm export`) into it; the
            model must be built with the same blocks and trainable parts (pass the run's overrides).
        **overrides: Constructor arguments overriding the registered defaults.

    Raises:
        UnknownModelError: naming the closest registered names.
    """
    _import_builtin_families()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"Unknown model {name!r}{hint} Registered: {', '.join(sorted(_MODELS))}")
    model = _MODELS[name](pretrained=pretrained, **overrides)
    if checkpoint is not None:
        load_weights(model, checkpoint)
    return model.eval()
