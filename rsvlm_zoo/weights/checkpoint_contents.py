"""What a training checkpoint keeps: the trained tensors and whatever cannot be rebuilt from the config.

A block frozen at weights loaded from a pretrained source (the CLIP encoder, the base LLM under LoRA) is
rebuilt exactly by constructing the model from its config again, so its tensors are left out; a LoRA run's
checkpoint then holds the adapters, the extractor and the projector, a small fraction of the model. Randomly
initialised frozen blocks (the tiny test models) cannot be rebuilt and are always kept.
"""

from __future__ import annotations

from typing import Any

from torch import nn

MARKER = "rsvlm_zoo_checkpoint"


def kept_keys(model: nn.Module, blocks: tuple[str, ...] = ("encoder", "extractor", "projector", "llm")) -> set[str]:
    """State-dict keys a checkpoint of `model` must hold.

    Args:
        model: A model whose blocks are attributes named in `blocks`.
        blocks: Block attribute names.

    Returns:
        Every key of a block that is not rebuildable, and the trainable parameters of one that is.
    """
    keys: set[str] = set()
    state_keys = model.state_dict().keys()
    for name in blocks:
        block: nn.Module = getattr(model, name)
        prefix = f"{name}."
        params = dict(block.named_parameters())
        rebuildable = bool(getattr(block, "weights_loaded", False))
        if not rebuildable or all(p.requires_grad for p in params.values()):
            keys.update(k for k in state_keys if k.startswith(prefix))
        else:
            keys.update(prefix + n for n, p in params.items() if p.requires_grad)
    return keys


def trim_checkpoint(model: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Drop the rebuildable frozen tensors from a Lightning checkpoint, in place, and mark it."""
    keep = kept_keys(model)
    state = checkpoint["state_dict"]
    dropped = [k for k in state if k not in keep]
    for k in dropped:
        del state[k]
    checkpoint[MARKER] = {"trimmed": True, "dropped_tensors": len(dropped)}


def check_loadable(model: nn.Module, checkpoint: dict[str, Any], where: str = "checkpoint") -> None:
    """Refuse a checkpoint that does not fit `model`: unknown tensors, or tensors it needs but lacks.

    A trimmed checkpoint may lack the rebuildable frozen tensors (the model already holds them from its
    pretrained source); a full one must match exactly.

    Raises:
        ValueError: naming up to five offending keys and the likely cause.
    """
    state = checkpoint.get("state_dict", {})
    own = set(model.state_dict())
    unexpected = sorted(set(state) - own)
    if unexpected:
        raise ValueError(
            f"{where} holds {len(unexpected)} tensor(s) this model lacks, e.g. {unexpected[:5]}; "
            "build the model with the config the checkpoint was trained with (its config.yaml)"
        )
    trimmed = bool(checkpoint.get(MARKER, {}).get("trimmed"))
    needed = kept_keys(model) if trimmed else own
    missing = sorted(needed - set(state))
    if missing:
        raise ValueError(
            f"{where} lacks {len(missing)} tensor(s) this model needs, e.g. {missing[:5]}; it was saved by a "
            "model with other trainable blocks (stage, lora, train_encoder/train_llm) than this one"
        )
