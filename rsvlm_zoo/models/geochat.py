"""GeoChat: LLaVA-1.5 with regions written as text, `{<x1><y1><x2><y2>}` on a 0-100 grid, and task tags.

GeoChat has no region module: a region reference (`<mask><pos>`) is replaced by its box as text before
tokenising (`InputSpec.region_kind == "text"`, see `rsvlm_zoo.data.processor`), and a `[refer]` answer is a box
written the same way. It is the baseline region-token models are compared against.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from tokenizers import AddedToken

from rsvlm_zoo.data.box_codec import Box, answer_box
from rsvlm_zoo.data.schema import Region, Sample, Turn
from rsvlm_zoo.models.base import RegionVLM
from rsvlm_zoo.models.blocks.encoders import VisionEncoder, ViTCLIPEncoder
from rsvlm_zoo.models.blocks.llms import HFCausalLM
from rsvlm_zoo.models.blocks.regions import RegionBatch, RegionExtractor
from rsvlm_zoo.models.builder import build_member
from rsvlm_zoo.models.describe import ImageLike, answer_samples, check_box, group_by_image, to_rgb_array
from rsvlm_zoo.models.lora import LoraSettings
from rsvlm_zoo.registry import register_model
from rsvlm_zoo.tokens import REGION
from rsvlm_zoo.weights.pretrained import llm_block

IDENTIFY_PROMPT = "<image>\n[identify] What is the object present at {region}?"
REFER_PROMPT = "<image>\n[refer] Where is the {phrase}?"
# Words of GeoChat's box text and task tags; added to a tokenizer that would read them as unknown words (the
# tiny word-level one), after every existing token, so no existing id moves. A byte-fallback tokenizer (Vicuna's)
# reads them without `<unk>` and gets none.
BOX_TEXT_TOKENS = ("{<", "><", ">}", ">|<")
TASK_TAG_WORDS = ("refer", "grounding", "identify")


class TextRegions(RegionExtractor):
    """GeoChat's "extractor": none; regions reach the LLM as text.

    The block has no parameters and emits no region tokens (an empty (0, 2, out_dim) tensor; no `<mask>`/`<pos>`
    is left in the text to fill).

    Args:
        out_dim: Width of the (never emitted) region tokens: the LLM width.
    """

    needs = "text"

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim

    def forward(self, features: list[torch.Tensor], regions: RegionBatch) -> torch.Tensor:
        """An empty (0, 2, out_dim) tensor in the features' dtype and device."""
        ref = features[0]
        return ref.new_zeros(0, self.tokens_per_region, self.out_dim)


def add_box_text_tokens(llm: HFCausalLM) -> list[str]:
    """Add GeoChat's box punctuation and task tags to a tokenizer that reads them as `<unk>`; grow the embeddings.

    New ids follow every existing one; new embedding rows are the mean of the old (as `HFCausalLM` does), so a
    model rebuilt from its config has the same rows. Returns the words added (none for Vicuna's tokenizer).
    """
    tok = llm.tokenizer
    unk = tok.unk_token_id
    missing = [w for w in (*BOX_TEXT_TOKENS, *TASK_TAG_WORDS) if unk in tok(w, add_special_tokens=False).input_ids]
    if not missing:
        return []
    tok.add_tokens([AddedToken(w, single_word=w in TASK_TAG_WORDS, normalized=False) for w in missing])
    llm.fit_embeddings_to_tokenizer()
    return missing


class GeoChat(RegionVLM):
    """GeoChat: `<image>` expands to the projected CLIP tokens; regions are text, answers may be boxes as text.

    Stage 1 trains the projector (LLaVA's alignment); stage 2 the projector and the LLM (LoRA at full size).
    Questions start with a task tag: `[refer]` (phrase -> box), `[identify]` (box -> what is there),
    `[grounding]` (description with boxes).
    """

    STAGES: ClassVar[dict[int, tuple[str, ...]]] = {1: ("projector",), 2: ("projector", "llm")}
    project_regions: ClassVar[bool] = False
    TEMPLATE: ClassVar[str] = "llava_v1"  # GeoChat's code prompts with LLaVA's conv_llava_v1

    def __init__(
        self, encoder: VisionEncoder, extractor: RegionExtractor, llm: HFCausalLM, *args: Any, **kwargs: Any
    ) -> None:
        add_box_text_tokens(llm)  # before LoRA is attached and any checkpoint is loaded
        super().__init__(encoder, extractor, llm, *args, **kwargs)

    @torch.no_grad()
    def describe(
        self,
        images: list[ImageLike],
        regions: list[list[Any]] | None = None,
        prompt: str | None = None,
        max_new_tokens: int | None = None,
        task: str = "identify",
        **generate_kwargs: Any,
    ) -> list[list[str]] | list[list[Box | None]]:
        """Answer per region, all in one generation batch.

        Args:
            images: PIL images, HxWx3 uint8 arrays or file paths, any size.
            regions: Per image: (x1, y1, x2, y2) pixel boxes for "identify", referring phrases for "refer".
            prompt: Question with `<image>` and `{region}` ("identify", the box text goes there) or `{phrase}`
                ("refer"); defaults to GeoChat's wording with its task tag.
            max_new_tokens: Generation length.
            task: "identify" (box -> answer text) or "refer" (phrase -> box).
            **generate_kwargs: Passed to generation; greedy by default.

        Returns:
            Per image, per region: the answer text ("identify"), or the first box of the answer in that image's
            pixels, None when the answer holds none ("refer").
        """
        if task not in ("identify", "refer"):
            raise ValueError(f"task must be 'identify' or 'refer', got {task!r}")
        regions = regions if regions is not None else [[] for _ in images]
        if len(regions) != len(images):
            raise ValueError(f"got {len(images)} images but region lists for {len(regions)}")
        prompt = prompt or (IDENTIFY_PROMPT if task == "identify" else REFER_PROMPT)
        slot = "{region}" if task == "identify" else "{phrase}"
        if "<image>" not in prompt or slot not in prompt:
            raise ValueError(f"prompt must contain <image> and {slot}")
        arrays = [to_rgb_array(im) for im in images]
        samples, owners = [], []
        for i, (img, items) in enumerate(zip(arrays, regions, strict=True)):
            h, w = img.shape[:2]
            for k, item in enumerate(items):
                if task == "identify":  # the processor writes the box as text where `<mask><pos>` stands
                    regs = [Region(box=check_box(item, w, h, f"image {i}, box {k}"))]
                    text = prompt.replace(slot, REGION)
                else:
                    regs, text = [], prompt.replace(slot, str(item))
                samples.append(
                    Sample(
                        image=img, width=w, height=h, regions=regs, sample_id=str(i), conversation=[Turn("human", text)]
                    )
                )
                owners.append(i)
        answers = answer_samples(self, samples, arrays, owners, max_new_tokens, **generate_kwargs)
        if task == "refer":
            sizes = [arrays[i].shape[1::-1] for i in owners]
            answers = [first_box(a, w, h) for a, (w, h) in zip(answers, sizes, strict=True)]
        return group_by_image(answers, owners, len(images))


def first_box(text: str, width: int, height: int) -> Box | None:
    """The first grid100 box written in `text`, in pixels of a `width` x `height` image, its angle dropped.

    None when there is none, or when the first one is off the grid or inverted (`answer_box`, format geochat).
    """
    box = answer_box(text, "geochat", width, height)
    return None if box is None else box[:4]


def _create_geochat(pretrained: bool, defaults: dict[str, Any], overrides: dict[str, Any]) -> GeoChat:
    def extractor(enc: ViTCLIPEncoder, lm: HFCausalLM, args: dict[str, Any]) -> TextRegions:
        if args:
            raise ValueError(f"GeoChat has no region module to configure; drop the extractor arguments {sorted(args)}")
        return TextRegions(lm.hidden_size)

    return build_member(GeoChat, ViTCLIPEncoder, extractor, pretrained, defaults, overrides)


@register_model
def geochat_7b(pretrained: bool = False, **overrides: Any) -> GeoChat:
    """GeoChat at full size: CLIP ViT-L/14 at 504 px (interpolated position embeddings), Vicuna-7B v1.5 + LoRA."""
    defaults = {
        "encoder": {"model_name": "vit_large_patch14_clip_504.geochat"},
        "llm": llm_block("lmsys/vicuna-7b-v1.5"),
        "stage": 2,
        "lr": 2e-4,
        "lora": LoraSettings(r=64, alpha=16, dropout=0.05),
    }
    return _create_geochat(pretrained, defaults, overrides)


@register_model
def geochat_tiny(pretrained: bool = False, **overrides: Any) -> GeoChat:
    """A tiny random GeoChat for CPU tests and demos: the random LLM trains in full with the projector."""
    if pretrained:
        raise ValueError("geochat_tiny has no pretrained weights; build it with pretrained=False")
    defaults = {
        "encoder": {"model_name": "test_vit"},
        "llm": llm_block("tiny_llama"),
        "stage": 2,
        "lr": 2e-3,
        "max_new_tokens": 12,
    }
    return _create_geochat(False, defaults, overrides)
