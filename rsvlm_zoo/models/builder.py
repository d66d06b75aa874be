"""The one way a family member is built: variant defaults + overrides -> encoder, LLM, extractor, projector, model."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from rsvlm_zoo.models.base import RegionVLM
from rsvlm_zoo.models.blocks.encoders import EfficientNetLiteEncoder, VisionEncoder
from rsvlm_zoo.models.blocks.llms import HFCausalLM
from rsvlm_zoo.models.blocks.projectors import MLPProjector
from rsvlm_zoo.registry import merge_overrides

M = TypeVar("M", bound=RegionVLM)
# (encoder, llm, the extractor's arguments) -> the extractor, sized to fit the other two blocks
ExtractorFactory = Callable[[VisionEncoder, HFCausalLM, dict[str, Any]], nn.Module]


def _meaningful(model_cls: type[RegionVLM], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides without the `None`s the model cannot take: `None` means "off" only where an argument defaults to it."""
    nullable: set[str] = set()
    for cls in model_cls.__mro__:
        init = cls.__dict__.get("__init__")
        if init is not None:
            params = inspect.signature(init).parameters.values()
            nullable |= {p.name for p in params if p.default is None}
    return {k: v for k, v in overrides.items() if v is not None or k in nullable}


def build_member(
    model_cls: type[M],
    encoder_cls: type[VisionEncoder],
    extractor: ExtractorFactory,
    pretrained: bool,
    defaults: dict[str, Any],
    overrides: dict[str, Any],
) -> M:
    """Build a member from its variant's defaults and the caller's overrides (`registry.merge_overrides`).

    Args:
        model_cls: The family's `RegionVLM` subclass.
        encoder_cls: The family's encoder block; an EfficientNet named in the encoder arguments (the small
            members' frozen ImageNet Lite0) gets `EfficientNetLiteEncoder` in any family.
        extractor: Builds the family's extractor from the encoder, the LLM and the extractor arguments.
        pretrained: Load the encoder's and the LLM's pretrained weights (local files or cache only).
        defaults: The variant: `encoder`, `llm`, optional `extractor` and `projector` arguments, and model arguments.
        overrides: `build_model`'s keyword arguments.
    """
    args = merge_overrides(defaults, _meaningful(model_cls, overrides))
    enc_args = args.pop("encoder")
    if "efficientnet" in str(enc_args.get("model_name", "")):
        encoder_cls = EfficientNetLiteEncoder
    enc = encoder_cls(**{"pretrained": pretrained, **enc_args})  # a variant may fix its encoder's `pretrained`
    lm = HFCausalLM(**{"pretrained": pretrained, **args.pop("llm")})
    ext = extractor(enc, lm, args.pop("extractor", {}))
    proj = MLPProjector(enc.image_dim, lm.hidden_size, **args.pop("projector", {}))
    return model_cls(encoder=enc, extractor=ext, projector=proj, llm=lm, **args)
