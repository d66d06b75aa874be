"""Import released upstream checkpoints: Osprey-7b into AquilaPlus, LLaVA-1.5's `mm_projector.bin` into a projector.

Osprey-7b is an `OspreyLlamaForCausalLM` saved as a sharded Hugging Face checkpoint (`pytorch_model-0000K-of-
0000N.bin` or `model-0000K-of-0000N.safetensors` with its `*.index.json`). Its names:

- `mask_extractor.*` (an attribute of the causal LM itself, so without the `model.` prefix): `res2`..`res5`
  (level linears), `feat_linear` (1024 -> 4096), `mask_linear.layers.{0,1,2}` (the 112 x 112 position MLP);
- `model.mm_projector.{0,2}.*`: the `mlp2x_gelu` image projector;
- `model.embed_tokens`, `model.layers.*`, `model.norm`, `lm_head`: the Llama LLM. Osprey adds `<mask>` and
  `<pos>` to its tokenizer but never resizes the embeddings, so they keep Vicuna's 32,000 rows; the rows this
  project adds (`<image>`, `<mask>`, `<pos>`) are never looked up (their positions carry visual features) and
  keep their own values;
- `model.vision_tower.*`: the OpenCLIP ConvNeXt, skipped (the encoder loads its own weights).

Every file is read with safetensors or `torch.load(weights_only=True)` (`read_state_dict`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from rsvlm_zoo.weights.files import read_state_dict

_LEVEL = {"res2": 0, "res3": 1, "res4": 2, "res5": 3}
_POS_LAYER = {"0": 0, "1": 2, "2": 4}  # Osprey's MLP layers -> our Sequential indices (ReLUs in between)
_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
_EMBEDDINGS = ("model.embed_tokens.weight", "lm_head.weight")


def osprey_key_to_aquila(key: str) -> str | None:
    """Map one Osprey parameter name onto the AquilaPlus name (before LoRA); None for tensors not used."""
    if "vision_tower" in key:
        return None
    if m := re.fullmatch(r"(?:model\.)?mask_extractor\.(res[2-5])\.(weight|bias)", key):
        return f"extractor.level_proj.{_LEVEL[m[1]]}.{m[2]}"
    if m := re.fullmatch(r"(?:model\.)?mask_extractor\.feat_linear\.(weight|bias)", key):
        return f"extractor.mask_proj.{m[1]}"
    if m := re.fullmatch(r"(?:model\.)?mask_extractor\.mask_linear\.layers\.([0-2])\.(weight|bias)", key):
        return f"extractor.pos_mlp.{_POS_LAYER[m[1]]}.{m[2]}"
    if m := re.fullmatch(r"model\.mm_projector\.([02])\.(weight|bias)", key):
        return f"projector.net.{m[1]}.{m[2]}"
    if key.startswith(("model.embed_tokens.", "model.layers.", "model.norm.", "lm_head.")):
        return f"llm.model.{key}"
    return None


def convert_osprey_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename an Osprey state dict; returns (renamed tensors, skipped key names)."""
    renamed, skipped = {}, []
    for key, value in state.items():
        new = osprey_key_to_aquila(key)
        if new is None:
            skipped.append(key)
        else:
            renamed[new] = value
    return renamed, skipped


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a Hugging Face checkpoint: a sharded directory (its index), a directory with one file, or a file.

    Raises:
        FileNotFoundError: when no checkpoint file is found, or a shard the index names is missing.
        ValueError: for a malformed index, or a file that is not a state dict (see `read_state_dict`).
    """
    path = Path(path)
    if path.is_file():
        return read_state_dict(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist (expected an Osprey checkpoint directory or file)")
    index = next((path / name for name in _INDEX_FILES if (path / name).is_file()), None)
    if index is None:
        single = next((path / name for name in _SINGLE_FILES if (path / name).is_file()), None)
        if single is None:
            raise FileNotFoundError(f"{path} holds none of {', '.join(_INDEX_FILES + _SINGLE_FILES)}")
        return read_state_dict(single)
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted({str(v) for v in weight_map.values()})
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{index} is not a checkpoint index (a JSON object with a weight_map): {err}") from err
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        file = path / shard
        if Path(shard).name != shard or not file.is_file():
            raise FileNotFoundError(f"{index} names shard {shard!r}, which is not a file in {path}")
        state.update(read_state_dict(file))
    missing = sorted(set(weight_map) - set(state))
    if missing:
        raise ValueError(f"{index} lists {len(missing)} tensor(s) its shards lack, e.g. {missing[:3]}")
    return state


def _canonical(name: str) -> str:
    """A parameter name without peft's wrapping (`base_model.model.`, `.base_layer`)."""
    return name.replace("base_model.model.", "").replace(".base_layer.", ".")


def load_osprey_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor] | str | Path) -> list[str]:
    """Load Osprey weights (a state dict, a checkpoint file or a sharded checkpoint directory) into an AquilaPlus.

    Works before or after LoRA is attached (the LLM's frozen base weights are found under peft's names). An
    Osprey embedding with fewer rows than the model's (Osprey keeps Vicuna's 32,000) fills the first rows.

    Returns:
        The AquilaPlus parameter names left untouched (the encoder, LoRA adapters, anything Osprey lacks).

    Raises:
        ValueError: when a mapped tensor's shape does not fit (names both shapes), when a name maps to nothing in
            the model, or when nothing in the state dict maps.
    """
    if isinstance(state, (str, Path)):
        state = read_checkpoint(state)
    renamed, _ = convert_osprey_state_dict(state)
    if not renamed:
        raise ValueError(
            "no Osprey parameter names found (expected mask_extractor.*, model.mm_projector.*, model.layers.*)"
        )
    own = model.state_dict()
    by_canonical = {_canonical(name): name for name in own}
    targets: dict[str, torch.Tensor] = {}
    for name, tensor in renamed.items():
        target = by_canonical.get(name)
        if target is None:
            raise ValueError(f"Osprey tensor maps to {name!r}, which this model lacks; is it an AquilaPlus model?")
        have = own[target]
        if name.endswith(_EMBEDDINGS) and tensor.shape[1:] == have.shape[1:] and tensor.shape[0] < have.shape[0]:
            tensor = torch.cat([tensor.to(have.dtype), have[tensor.shape[0] :]])  # the added rows stay as they are
        if have.shape != tensor.shape:
            raise ValueError(
                f"{name}: Osprey has shape {tuple(tensor.shape)}, the model {tuple(have.shape)}; "
                "build the model with matching widths (and the Osprey tokenizer for the embeddings)"
            )
        targets[target] = tensor
    model.load_state_dict(targets, strict=False)
    return sorted(set(own) - set(targets))


def load_llava_projector(model: nn.Module, path: str | Path | Mapping[str, torch.Tensor]) -> None:
    """Initialise `model.projector` from LLaVA-1.5's `mm_projector.bin` (`model.mm_projector.{0,2}.*`).

    MGIMM starts its projector from LLaVA-1.5's: ViT-L/14-336 (1024) -> Vicuna-7B (4096), `mlp2x_gelu`.

    Raises:
        ValueError: when the file holds no projector tensors or their shapes do not fit (names both shapes).
    """
    state = read_state_dict(path) if isinstance(path, (str, Path)) else dict(path)
    found = {}
    for key, tensor in state.items():
        if m := re.fullmatch(r"(?:model\.)?mm_projector\.([02])\.(weight|bias)", key):
            found[f"net.{m[1]}.{m[2]}"] = tensor
    expected = {f"net.{i}.{kind}" for i in (0, 2) for kind in ("weight", "bias")}
    if set(found) != expected:
        raise ValueError(
            f"{path if isinstance(path, (str, Path)) else 'state dict'}: expected LLaVA's model.mm_projector.0/2 "
            f"weight and bias, found {sorted(found) or sorted(state)[:5]}"
        )
    own = model.projector.state_dict()
    for name, tensor in found.items():
        if own[name].shape != tensor.shape:
            raise ValueError(
                f"projector.{name}: LLaVA has shape {tuple(tensor.shape)}, the model {tuple(own[name].shape)}"
            )
    model.projector.load_state_dict(found)
