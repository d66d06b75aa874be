"""Models as plain config (class, arguments, each block's), built back only from registered classes.

Blocks remember how they were built, so a model can be written as config and built again elsewhere.

A config read from a model file (an export's `config.json`, a checkpoint) is data, never a program: it may only
name classes registered here. The zoo's own models and blocks register themselves when defined; a user's own
block or model class is allowed with `register_class` in their code. Anything else is refused before any import.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, TypeVar

from torch import nn

T = TypeVar("T", bound=type)
_TRUSTED: dict[str, type] = {}  # "module.QualName" and short "QualName" -> class


class UntrustedConfigError(ValueError):
    """A config names a class that is not registered with rsvlm_zoo; nothing was imported or called."""


def register_class(cls: T) -> T:
    """Allow configs in model files (exports, checkpoints) to name `cls` (usable as a class decorator).

    The zoo's models and blocks are registered already; register your own block or model class in your own
    code before loading a model file that names it.

    Raises:
        TypeError: when `cls` is not a class.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_class takes a class, got {type(cls).__name__}")
    _TRUSTED[f"{cls.__module__}.{cls.__qualname__}"] = cls
    _TRUSTED.setdefault(cls.__qualname__, cls)
    return cls


def register_own_class(cls: type) -> None:
    """Register `cls` when the zoo itself defines it (called from `__init_subclass__` of the zoo's bases)."""
    if cls.__module__ == "rsvlm_zoo" or cls.__module__.startswith("rsvlm_zoo."):
        register_class(cls)


def trusted_class(path: Any, key: str = "class_path") -> type:
    """The registered class that `path` names (full `module.QualName` or the registered short name).

    Raises:
        UntrustedConfigError: naming `key` and the path, when no registered class has that name.
    """
    if isinstance(path, str) and path in _TRUSTED:
        return _TRUSTED[path]
    raise UntrustedConfigError(
        f"{key} names {str(path)[:200]!r}, which is not a model or block registered with rsvlm_zoo; model "
        "files may only name the zoo's classes, so it was not imported. If it is your own class, import it and "
        "call rsvlm_zoo.register_class on it before loading the file"
    )


class RecordsInitArgs:
    """Mixin: an instance keeps the arguments of its outermost constructor call in `init_args`.

    A subclass's `__init__` is wrapped once at class creation; only the first (outermost) call records,
    so `super().__init__()` chains leave the caller's arguments in place.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_own_class(cls)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self: Any, *args: Any, **kw: Any) -> None:
            if "_init_args" not in self.__dict__:
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop("self", None)
                for name, param in signature.parameters.items():
                    if param.kind is inspect.Parameter.VAR_KEYWORD:
                        arguments.update(arguments.pop(name, {}))
                object.__setattr__(self, "_init_args", arguments)
            init(self, *args, **kw)

        cls.__init__ = recording_init  # type: ignore[method-assign]

    @property
    def init_args(self) -> dict[str, Any]:
        """The constructor arguments this instance was built with (defaults filled in)."""
        return dict(self.__dict__.get("_init_args", {}))


def _plain(value: Any, where: str) -> Any:
    """`value` as JSON-ready data (tuples become lists); anything else is refused."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    raise TypeError(
        f"{where} is a {type(value).__name__}, which cannot be written as config; build the block from plain "
        "values (numbers, strings, lists, dicts)"
    )


def class_path(obj: Any) -> str:
    """`module.QualName` of an object's class."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def block_config(block: nn.Module, name: str = "block") -> dict[str, Any]:
    """`{"class_path": ..., "init_args": {...}}` rebuilding `block` (LightningCLI's form).

    Raises:
        TypeError: when the block does not record its arguments or one is not plain data.
    """
    if not isinstance(block, RecordsInitArgs):
        raise TypeError(
            f"{name} ({class_path(block)}) does not record its constructor arguments; derive it from "
            "VisionEncoder, RegionExtractor, MLPProjector or HFCausalLM (or RecordsInitArgs)"
        )
    return {"class_path": class_path(block), "init_args": _plain(block.init_args, name)}


def instantiate(config: Any, key: str = "config", **extra: Any) -> Any:
    """Build `config["class_path"](**config["init_args"], **extra)` for a registered class only.

    Args:
        config: `{"class_path": ..., "init_args": {...}}`.
        key: Where the config sits, for error messages (e.g. `model.init_args.encoder`).
        **extra: Further constructor arguments (already built blocks).

    Raises:
        UntrustedConfigError: when the class is not registered (`trusted_class`); nothing is imported.
        ValueError: when the config is not of that shape.
    """
    if not isinstance(config, dict):
        raise ValueError(f"{key} must be a dict with class_path and init_args, got {type(config).__name__}")
    target = trusted_class(config.get("class_path"), f"{key}.class_path")
    init_args = config.get("init_args", {})
    if not isinstance(init_args, dict) or not all(isinstance(k, str) for k in init_args):
        raise ValueError(f"{key}.init_args must be a dict of argument names, got {type(init_args).__name__}")
    return target(**{**init_args, **extra})


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
