"""Pretrained-weight descriptions kept apart from architectures, and offline resolution of their files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch


class MissingWeightsError(FileNotFoundError):
    """Weights were asked for but no local copy exists; the message names where we looked and the fix."""


@dataclass(frozen=True)
class PretrainedCfg:
    """Where a pretrained block's weights live and how its inputs are prepared.

    Attributes:
        hf_id: Hugging Face repository id looked up in the local cache only.
        local_path: Explicit local file or directory (overrides the cache).
        input_size: (height, width) the weights are run at.
        mean: Normalisation mean.
        std: Normalisation std.
        license: Licence of the weights.
        source: Human description of the weights' origin.
    """

    hf_id: str | None = None
    local_path: str | None = None
    input_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    license: str = "unknown"
    source: str = ""


PRETRAINED_CFGS: dict[str, PretrainedCfg] = {
    "convnext_large_mlp.clip_laion2b_ft_soup_320": PretrainedCfg(
        hf_id="timm/convnext_large_mlp.clip_laion2b_ft_soup_320",
        input_size=(512, 512),
        mean=(0.48145466, 0.4578275, 0.40821073),
        std=(0.26862954, 0.26130258, 0.27577711),
        license="apache-2.0",
        source="OpenCLIP ConvNeXt-L (LAION-2B), run at 512 px as Osprey does",
    ),
    "vit_large_patch14_clip_336.openai": PretrainedCfg(
        hf_id="timm/vit_large_patch14_clip_336.openai",
        input_size=(336, 336),
        mean=(0.48145466, 0.4578275, 0.40821073),
        std=(0.26862954, 0.26130258, 0.27577711),
        license="mit",
        source="OpenAI CLIP ViT-L/14 at 336 px",
    ),
    "lmsys/vicuna-7b-v1.5": PretrainedCfg(hf_id="lmsys/vicuna-7b-v1.5", license="llama2", source="Vicuna-7B v1.5"),
}


def _hf_cache_snapshot(repo_id: str) -> Path | None:
    """Local snapshot directory of a Hugging Face repository, or None; never touches the network."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure here means "not in the cache"
        return None


def _fix_hint(name: str, arg: str) -> str:
    return (
        f"download them on a machine with network access (e.g. `huggingface-cli download {name}`) and copy the "
        f"cache, or pass a local path with `{arg}`"
    )


def resolve_timm_weights(name: str, weights: str | Path | None) -> dict[str, torch.Tensor]:
    """Read a timm state dict from `weights` or the local Hugging Face cache.

    Raises:
        MissingWeightsError: naming every place looked at and the override to use.
    """
    looked: list[str] = []
    candidates: list[Path] = []
    if weights is not None:
        candidates.append(Path(weights))
    else:
        cfg = PRETRAINED_CFGS.get(name)
        repo = cfg.hf_id if cfg and cfg.hf_id else f"timm/{name}"
        snap = _hf_cache_snapshot(repo)
        looked.append(f"Hugging Face cache entry {repo} ({os.environ.get('HF_HOME', '~/.cache/huggingface')})")
        if snap is not None:
            candidates += [snap / "model.safetensors", snap / "pytorch_model.bin", snap / "open_clip_pytorch_model.bin"]
    for path in candidates:
        looked.append(str(path))
        if path.is_file():
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(path))
            return torch.load(path, map_location="cpu", weights_only=True)
    raise MissingWeightsError(
        f"no local weights for {name}; looked at: {', '.join(looked)}. Fix: "
        + _fix_hint(
            cfg.hf_id if (cfg := PRETRAINED_CFGS.get(name)) and cfg.hf_id else name,
            "--model.init_args.encoder.init_args.weights=/path/to/file",
        )
    )


def resolve_hf_model_dir(name_or_path: str) -> Path:
    """Local directory of a Hugging Face model given a path or a repository id in the local cache.

    Raises:
        MissingWeightsError: naming the path and cache entry looked at and the override to use.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    snap = _hf_cache_snapshot(name_or_path)
    if snap is not None:
        return snap
    raise MissingWeightsError(
        f"LLM {name_or_path!r} is neither a local directory nor in the local Hugging Face cache "
        f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}). Fix: "
        + _fix_hint(name_or_path, "--model.init_args.llm.init_args.name_or_path=/path/to/model_dir")
    )
