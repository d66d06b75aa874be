"""`--model`, `--checkpoint` and `--pretrained`: one meaning in every command that loads a model.

- `--model`: a registered name (`rsvlm_zoo.list_models()`), or a model file that describes itself (an exported
  directory or a Lightning checkpoint of an rsvlm_zoo model), loaded by `from_pretrained`;
- `--checkpoint`: weights loaded into the registered `--model` once it is built (`build_model(name,
  checkpoint=...)`): a Lightning checkpoint or an exported directory;
- `--pretrained`: build the registered `--model` from its pretrained weights (local files or the local cache).

A model file that is no checkpoint (a text file, an image, a truncated archive) is refused before it is unpickled.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rsvlm_zoo.registry import UnknownModelError, build_model
from rsvlm_zoo.weights.export import from_pretrained, load_weights
from rsvlm_zoo.weights.model_files import check_model_file, loading_model_file

MODEL_FILE_SUFFIXES = (".ckpt", ".pt", ".pth", ".safetensors")


class ModelUsageError(ValueError):
    """Model arguments that do not go together (exit status 2)."""


class ModelInputError(ValueError):
    """The model or its weights cannot be used (exit status 1)."""


def add_model_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """Add `--model`, `--checkpoint` and `--pretrained` with their shared meaning."""
    parser.add_argument(
        "--model",
        required=required,
        default=None,
        help="registered model name, exported model directory or Lightning checkpoint",
    )
    parser.add_argument(
        "--checkpoint", default=None, help="weights for a registered --model: Lightning checkpoint or export directory"
    )
    parser.add_argument("--pretrained", action="store_true", help="build a registered --model with pretrained weights")


def _looks_like_path(model: str) -> bool:
    return "/" in model or "\\" in model or model.endswith(MODEL_FILE_SUFFIXES)


def load_model(model: str, checkpoint: str | None = None, pretrained: bool = False) -> Any:
    """The model that `--model`, `--checkpoint` and `--pretrained` name, in eval mode.

    Raises:
        ModelUsageError: `checkpoint` or `pretrained` given with a model path.
        ModelInputError: a path-like `model` that does not exist, or a file that is no usable model (also for
            `checkpoint`).
        UnknownModelError: a name that is not registered.
    """
    path = Path(model)
    if path.exists():
        if checkpoint is not None or pretrained:
            raise ModelUsageError(
                "--checkpoint and --pretrained go with a registered model name; "
                f"{model} is a path and brings its own weights"
            )
        check_model_file(path)
        with loading_model_file(model, passthrough=(ModelInputError, UnknownModelError)):
            return from_pretrained(path).eval()
    if _looks_like_path(model):
        raise ModelInputError(f"model file not found: {model} (and it is not a registered model name)")
    if checkpoint is not None:
        check_model_file(checkpoint)  # before the model is built: a wrong file fails fast
    built = build_model(model, pretrained=pretrained)
    if checkpoint is not None:
        with loading_model_file(checkpoint, passthrough=(ModelInputError, UnknownModelError)):
            load_weights(built, checkpoint)
    return built.eval()
