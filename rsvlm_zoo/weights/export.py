"""Deployable model directories: write (`export_model`, `rsvlm export`) and load (`from_pretrained`).

An exported directory holds:

- `config.json`: the model class, its arguments and each block's (`model_config`), so the model is built again
  without the training recipe;
- `model.safetensors`: every tensor that cannot come back from a pretrained source: the extractor, the
  projector, and any randomly initialised block (a frozen CLIP encoder or base LLM is left out and loaded
  again from its local weights when the directory is loaded);
- `adapter/`: the LLM's LoRA adapter in peft's own format (`PeftModel.from_pretrained(base_llm, "adapter")`), or
- `llm/`: with `merge=True`, the LLM with the adapter merged in, as a Hugging Face model directory with its
  tokenizer (loadable by `AutoModelForCausalLM.from_pretrained`).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from rsvlm_zoo.weights.checkpoint_contents import kept_keys
from rsvlm_zoo.weights.model_config import CHECKPOINT_CONFIG_KEY, build_from_config, model_config

FORMAT = "rsvlm_zoo.export"  # the on-disk format name, kept as written by every release
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
ADAPTER_DIR = "adapter"
MERGED_LLM_DIR = "llm"


def _has_lora(model: nn.Module) -> bool:
    return getattr(model, "lora", None) is not None and any("lora_" in n for n, _ in model.llm.named_parameters())


def _merged_llm_config(llm_config: dict[str, Any]) -> dict[str, Any]:
    args = dict(llm_config["init_args"])
    args.update(
        name_or_path=MERGED_LLM_DIR, config=None, pretrained=True, tokenizer=None, load_in_4bit=False, gguf_file=None
    )
    return {**llm_config, "init_args": args}


def export_model(model: nn.Module, out_dir: str | Path, merge: bool = False, overwrite: bool = False) -> Path:
    """Write `model` as a deployable directory (see the module docstring).

    Args:
        model: A region VLM (e.g. from `build_model` or a training run).
        out_dir: Directory to create.
        merge: Merge the LoRA adapter into the LLM and write the merged LLM instead of the adapter.
        overwrite: Replace an existing `out_dir`.

    Returns:
        The directory written.

    Raises:
        FileExistsError: when `out_dir` exists and `overwrite` is false.
        ValueError: for `merge` without LoRA, or with a 4-bit LLM (merging into NF4 weights loses the adapter's
            precision; export the adapter, or build the model with `load_in_4bit: false` first).
    """
    out = Path(out_dir)
    lora = _has_lora(model)
    if merge and not lora:
        raise ValueError("merge=True needs a model with a LoRA adapter on its LLM; this one has none")
    if merge and model.llm.quantized:
        raise ValueError(
            "cannot merge LoRA into a 4-bit LLM without losing precision: export the adapter (no --merge), or "
            "rebuild the model with the LLM's load_in_4bit: false, load the checkpoint and merge then"
        )
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} already exists; choose another directory or pass overwrite=True")
        shutil.rmtree(out)
    out.mkdir(parents=True)

    config = model_config(model)
    state = model.state_dict()
    keep = kept_keys(model)
    if merge:
        keep = {k for k in keep if not k.startswith("llm.")}
        config["init_args"]["llm"] = _merged_llm_config(config["init_args"]["llm"])
        config["init_args"]["lora"] = None
    elif lora:
        keep = {k for k in keep if "lora_" not in k}
    tensors = {k: state[k].detach().cpu().contiguous().clone() for k in sorted(keep)}
    save_file(tensors, str(out / WEIGHTS_FILE))

    if merge:
        merged = copy.deepcopy(model.llm.model).merge_and_unload()
        merged.save_pretrained(out / MERGED_LLM_DIR, safe_serialization=True)
        model.llm.tokenizer.save_pretrained(out / MERGED_LLM_DIR)
    elif lora:
        model.llm.model.save_pretrained(out / ADAPTER_DIR, save_embedding_layers=False)
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "adapter": lora and not merge, "merged": merge}
    try:
        text = json.dumps({**meta, "model": config}, indent=2, allow_nan=False)  # strict JSON
    except ValueError as err:
        raise ValueError(f"the model config holds a NaN or infinite number ({err}); fix the hyperparameter") from err
    (out / CONFIG_FILE).write_text(text)
    return out


def _read_export_config(path: Path) -> dict[str, Any]:
    """The `config.json` of an exported directory, checked to be of the shape `export_model` writes.

    Raises:
        FileNotFoundError: when `config.json` is missing.
        ValueError: naming the file and what is wrong: not UTF-8, not JSON, nested too deeply, not an object,
            another format or a newer version, or a missing or mistyped key (`model`, `model.class_path`,
            `model.init_args`, and for a merged export `model.init_args.llm.init_args`).
    """
    cfg_file = path / CONFIG_FILE
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path} is not an exported model directory: {CONFIG_FILE} is missing")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{cfg_file} is not UTF-8 (byte offset {err.start}); export the model again") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{cfg_file} is not valid JSON ({err}); export the model again") from err
    except RecursionError as err:
        raise ValueError(f"{cfg_file} is JSON nested too deeply to read; export the model again") from err
    if not isinstance(cfg, dict):
        raise ValueError(f"{cfg_file} must hold a JSON object, not a {type(cfg).__name__}; export the model again")
    if cfg.get("format") != FORMAT:
        raise ValueError(f"{cfg_file} is not an rsvlm_zoo export (format {str(cfg.get('format'))[:60]!r})")
    version = cfg.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{cfg_file}: 'version' must be an integer, got {str(version)[:60]!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{cfg_file} has format version {version}; upgrade rsvlm_zoo to read it")
    model = cfg.get("model")
    if not isinstance(model, dict):
        found = "is missing" if model is None else f"is a {type(model).__name__}"
        raise ValueError(f"{cfg_file}: key 'model' {found}; it must be an object with class_path and init_args")
    if not isinstance(model.get("class_path"), str):
        raise ValueError(f"{cfg_file}: key 'model.class_path' is missing or not a string")
    if not isinstance(model.get("init_args"), dict):
        raise ValueError(f"{cfg_file}: key 'model.init_args' is missing or not an object")
    if cfg.get("merged"):
        llm = model["init_args"].get("llm")
        if not isinstance(llm, dict) or not isinstance(llm.get("init_args"), dict):
            raise ValueError(f"{cfg_file}: a merged export needs key 'model.init_args.llm.init_args' (an object)")
    return cfg


def load_exported_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load an exported directory's tensors (and adapter) into a model of the same config.

    Raises:
        ValueError: naming tensors the directory holds that the model lacks, or needs that the directory lacks.
    """
    path = Path(path)
    cfg = _read_export_config(path)
    tensors = load_file(str(path / WEIGHTS_FILE))
    own = model.state_dict()
    unexpected = sorted(set(tensors) - set(own))
    if unexpected:
        raise ValueError(
            f"{path / WEIGHTS_FILE} holds {len(unexpected)} tensor(s) this model lacks, e.g. {unexpected[:5]}; "
            f"build the model from {path / CONFIG_FILE} (rsvlm_zoo.from_pretrained) instead"
        )
    needed = kept_keys(model)
    if cfg.get("merged"):
        needed = {k for k in needed if not k.startswith("llm.")}
    if cfg.get("adapter"):
        needed = {k for k in needed if "lora_" not in k}
    missing = sorted(needed - set(tensors))
    if missing:
        raise ValueError(
            f"{path / WEIGHTS_FILE} lacks {len(missing)} tensor(s) this model needs, e.g. {missing[:5]}; it was "
            "exported from a model with other trainable blocks"
        )
    for name, tensor in tensors.items():
        if own[name].shape != tensor.shape:
            raise ValueError(f"{name}: exported shape {tuple(tensor.shape)}, model shape {tuple(own[name].shape)}")
    model.load_state_dict(tensors, strict=False)
    if cfg.get("adapter"):
        _load_adapter(model, path / ADAPTER_DIR)
    return model


def _load_adapter(model: nn.Module, adapter_dir: Path) -> None:
    from peft import set_peft_model_state_dict

    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing; the export is incomplete, export the model again")
    if not _has_lora(model):
        raise ValueError(f"{adapter_dir} holds a LoRA adapter but the model has none; build it with `lora` set")
    result = set_peft_model_state_dict(model.llm.model, load_file(str(weights)))
    if result.unexpected_keys:
        raise ValueError(f"{weights} has adapter tensors the model lacks, e.g. {result.unexpected_keys[:5]}")


def from_pretrained(path: str | Path) -> nn.Module:
    """Build a model from an exported directory, or from a Lightning checkpoint written by rsvlm_zoo, in eval mode.

    Frozen pretrained blocks (CLIP encoder, base LLM) are loaded from their local weights as the config names
    them; everything else comes from the directory or checkpoint.

    Raises:
        FileNotFoundError: when `path` does not exist.
        ValueError: when it is neither an export nor a checkpoint with the model's config.
    """
    path = Path(path)
    if path.is_dir():
        cfg = _read_export_config(path)
        config = copy.deepcopy(cfg["model"])
        if cfg.get("merged"):
            config["init_args"]["llm"]["init_args"]["name_or_path"] = str(path / MERGED_LLM_DIR)
        model = build_from_config(config)
        return load_exported_weights(model, path).eval()
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected an exported directory or a .ckpt file)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    config = checkpoint.get(CHECKPOINT_CONFIG_KEY) if isinstance(checkpoint, dict) else None
    if config is None:
        raise ValueError(
            f"{path} carries no model config (not written by an rsvlm_zoo model); build the model with "
            "build_model(name, checkpoint=path) or from the run's config.yaml"
        )
    model = build_from_config(config)
    return load_checkpoint_weights(model, path, checkpoint).eval()


def load_checkpoint_weights(model: nn.Module, path: str | Path, checkpoint: dict[str, Any] | None = None) -> nn.Module:
    """Load a Lightning checkpoint's tensors into `model` after checking they fit."""
    from rsvlm_zoo.weights.checkpoint_contents import check_loadable

    if checkpoint is None:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    check_loadable(model, checkpoint, where=str(path))
    model.load_state_dict(checkpoint["state_dict"], strict=False)
    return model


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load an exported directory or a Lightning checkpoint into an already built `model`."""
    path = Path(path)
    if path.is_dir():
        return load_exported_weights(model, path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (expected an exported directory or a .ckpt file)")
    return load_checkpoint_weights(model, path)
