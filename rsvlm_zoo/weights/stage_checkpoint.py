"""Initialise a model from the checkpoint of an earlier training stage."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a Lightning checkpoint (its `state_dict`), a .safetensors file or a plain state dict.

    Raises:
        FileNotFoundError: naming the path and the recipe key that sets it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; run the earlier stage's recipe first, or set "
            "--model.init_args.init_checkpoint to its .ckpt"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state)


def load_stage_checkpoint(model: nn.Module, path: str | Path) -> list[str]:
    """Copy every tensor of `path` whose name and shape match `model` (call before attaching LoRA).

    Returns:
        The parameter names loaded.

    Raises:
        ValueError: when no tensor matches, when the checkpoint holds tensors this model has no place for
            (the earlier stage's blocks were built with other arguments: its trained weights would be
            dropped silently), or a matching name has another shape (names both shapes).
    """
    state = read_state_dict(path)
    own = model.state_dict()
    loaded = {}
    unplaced = [name for name in state if name not in own]
    if unplaced and len(unplaced) < len(state):
        shown = ", ".join(unplaced[:5]) + (f" and {len(unplaced) - 5} more" if len(unplaced) > 5 else "")
        raise ValueError(
            f"{path}: the model has no place for {len(unplaced)} trained tensor(s) of the earlier stage ({shown}); "
            "build this stage's blocks with the same arguments as the earlier stage's (compare their recipes)"
        )
    for name, tensor in state.items():
        if name not in own:
            continue
        if own[name].shape != tensor.shape:
            raise ValueError(
                f"{path}: {name} has shape {tuple(tensor.shape)} but the model has {tuple(own[name].shape)}; "
                "the earlier stage was built with other widths"
            )
        loaded[name] = tensor
    if not loaded:
        raise ValueError(f"{path}: no tensor matches this model's parameter names; is it a checkpoint of this model?")
    model.load_state_dict(loaded, strict=False)
    log.info("initialised %d tensors from %s", len(loaded), path)
    return sorted(loaded)
