"""Import released Osprey checkpoints (the same design Aquila-plus uses) into an AquilaPlus model."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

_LEVEL = {"res2": 0, "res3": 1, "res4": 2, "res5": 3}
_POS_LAYER = {"0": 0, "1": 2, "2": 4}  # Osprey's MLP layers -> our Sequential indices (ReLUs in between)


def osprey_key_to_aquila(key: str) -> str | None:
    """Map one Osprey parameter name onto the AquilaPlus name; None for tensors we do not use.

    Osprey's CLIP tower (`model.vision_tower.*`) is skipped: the encoder loads its own timm weights.
    """
    if "vision_tower" in key:
        return None
    if m := re.fullmatch(r"model\.mask_extractor\.(res[2-5])\.(weight|bias)", key):
        return f"extractor.level_proj.{_LEVEL[m[1]]}.{m[2]}"
    if m := re.fullmatch(r"model\.mask_extractor\.feat_linear\.(weight|bias)", key):
        return f"extractor.mask_proj.{m[1]}"
    if m := re.fullmatch(r"model\.mask_extractor\.mask_linear\.layers\.([0-2])\.(weight|bias)", key):
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


def load_osprey_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor] | str | Path) -> list[str]:
    """Load Osprey weights (a state dict, or a .safetensors/.bin file) into an AquilaPlus model.

    Returns:
        The AquilaPlus parameter names left untouched (the encoder, and anything Osprey lacks).

    Raises:
        ValueError: when a mapped tensor's shape differs from the model's (names both shapes), or when
            nothing in the state dict maps.
    """
    if isinstance(state, (str, Path)):
        path = Path(state)
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    renamed, _ = convert_osprey_state_dict(state)
    if not renamed:
        raise ValueError("no Osprey parameter names found (expected model.mask_extractor.*, model.mm_projector.*, ...)")
    own = model.state_dict()
    for name, tensor in renamed.items():
        if name not in own:
            raise ValueError(f"Osprey tensor maps to {name!r}, which this model lacks; is it an AquilaPlus model?")
        if own[name].shape != tensor.shape:
            raise ValueError(
                f"{name}: Osprey has shape {tuple(tensor.shape)}, the model {tuple(own[name].shape)}; "
                "build the model with matching widths (and the Osprey tokenizer for the embeddings)"
            )
    model.load_state_dict(renamed, strict=False)
    return sorted(set(own) - set(renamed))
