"""Blocks remember how they were built, so a model can be written as config and built again elsewhere."""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

from torch import nn


class RecordsInitArgs:
    """Mixin: an instance keeps the arguments of its outermost constructor call in `init_args`.

    A subclass's `__init__` is wrapped once at class creation; only the first (outermost) call records,
    so `super().__init__()` chains leave the caller's arguments in place.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
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


def instantiate(config: dict[str, Any], **extra: Any) -> Any:
    """Build `config["class_path"](**config["init_args"], **extra)`.

    Raises:
        ValueError: when the class cannot be imported (names it).
    """
    path = config.get("class_path")
    if not isinstance(path, str) or "." not in path:
        raise ValueError(f"config needs a dotted class_path, got {path!r}")
    module_name, _, qualname = path.rpartition(".")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import {path} named by the config: {err}") from err
    return target(**{**config.get("init_args", {}), **extra})
