"""A region VLM as plain config (model class, its arguments and each block's), and built back from it."""

from __future__ import annotations

from typing import Any

from torch import nn

from rsvlm_zoo.models.blocks.config import _plain, block_config, class_path, instantiate, trusted_class

BLOCKS = ("encoder", "extractor", "projector", "llm")
CHECKPOINT_CONFIG_KEY = "rsvlm_zoo_model_config"  # where Lightning checkpoints carry the model config
# Arguments that only matter when a model is first trained, never when it is built again from its weights.
_TRAINING_ONLY = ("init_checkpoint",)


def _is_model_argument(key: str) -> bool:
    """Whether a hyperparameter is a constructor argument to keep in the model config.

    Training-only keys are not, nor the `_class_path` / `_instantiator` entries LightningCLI adds to the
    hyperparameters of a model it instantiates.
    """
    return key not in _TRAINING_ONLY and not key.startswith("_")


def model_config(model: nn.Module) -> dict[str, Any]:
    """`{"class_path": ..., "init_args": {...}}` rebuilding `model` with freshly initialised or pretrained blocks.

    The model's own hyperparameters come from `model.hparams` (plain data); each block from the arguments
    it was constructed with. An earlier stage's `init_checkpoint` is left out: the weights loaded next
    replace whatever it would give.

    Raises:
        TypeError: when a block cannot be written as config.
    """
    args = {k: v for k, v in dict(model.hparams).items() if _is_model_argument(k)}
    init_args = _plain(args, "model hyperparameters")
    for name in BLOCKS:
        init_args[name] = block_config(getattr(model, name), name)
    return {"class_path": class_path(model), "init_args": init_args}


def build_from_config(config: dict[str, Any]) -> nn.Module:
    """Build a model from `model_config()` output (blocks first, then the model around them).

    Every class the config names must be registered with rsvlm_zoo (`register_class`); all are checked before
    any is built.

    Raises:
        UntrustedConfigError: when the config names a class that is not registered (nothing is imported).
        ValueError: when the config lacks a block or is not of the written shape.
    """
    if not isinstance(config, dict) or not isinstance(config.get("init_args", {}), dict):
        raise ValueError("model config must be a dict with class_path and init_args; it was not written by rsvlm_zoo")
    trusted_class(config.get("class_path"), "model.class_path")
    init_args = {k: v for k, v in config.get("init_args", {}).items() if _is_model_argument(k)}
    for name in BLOCKS:
        if name not in init_args:
            raise ValueError(f"model config lacks the {name!r} block; it was not written by rsvlm_zoo")
        if not isinstance(init_args[name], dict):
            raise ValueError(f"model.init_args.{name} must be a dict with class_path and init_args")
        trusted_class(init_args[name].get("class_path"), f"model.init_args.{name}.class_path")
    blocks = {name: instantiate(init_args.pop(name), f"model.init_args.{name}") for name in BLOCKS}
    return instantiate({"class_path": config["class_path"], "init_args": init_args}, "model", **blocks)
