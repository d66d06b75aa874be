"""`describe()` linear in regions: region tokens once per (image, region), a shared prompt prefix encoded once.

A family's `describe()` asks many questions about one image. Written out as separate prompts, every prompt
repeats the system text, the image tokens and (for Aquila-plus) Osprey's list of every region, so N questions
carry N copies of N region masks through preprocessing, the extractor and the LLM. Here instead:

- each image is encoded once and each of its regions goes through preprocessing and the extractor once
  (`region_table`); a question's placeholders index into that table;
- the questions of one group (one image, or one chunk of its regions) are tokenised whole, exactly as the
  processor tokenises them, and the longest prefix they share (same tokens, same regions behind every
  placeholder) is run through the LLM once; its KV cache (`DynamicCache`) is repeated across the question
  batch and every question continues from it (`greedy_from_prefix`).

Positions and attention match one left-padded batch of the whole prompts: the prefix holds positions
0..P-1, each question's own tokens are left-padded *after* the prefix (padding masked out, not counted as
positions), so question k's tokens sit at positions P..P+S_k-1 as in the unshared prompt and greedy answers
equal the full-prompt path's (logits agree within float rounding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rsvlm_zoo.data.processor import RegionProcessor
from rsvlm_zoo.data.schema import Region, Turn
from rsvlm_zoo.models.prefix_decoding import greedy_from_prefix
from rsvlm_zoo.tokens import IMAGE_TOKEN

MASK_CHUNK = 64  # masks resized per step: bounds the float copy of full-size masks


@dataclass
class Question:
    """One prompt of a `describe()` call.

    Attributes:
        image: Index of the image it asks about.
        text: The human turn (with `<image>` and `<mask><pos>` placeholders).
        refs: The image's region indices behind the placeholders, in reading order (for a model with
            `regions_in_image`, the regions `<image>` expands with).
        group: Questions with the same (image, group) are decoded together behind their shared prefix.
    """

    image: int
    text: str
    refs: list[int]
    group: int = 0


@dataclass
class _Group:
    image: int
    members: list[int] = field(default_factory=list)


def context_limit(model: Any) -> int | None:
    """Longest token sequence the model's LLM was built for (`max_position_embeddings`), if it states one."""
    config = getattr(model.llm.model, "config", None)
    limit = getattr(config, "max_position_embeddings", None)
    return int(limit) if limit else None


def use_shared_prefix(reuse_prefix: bool | None, questions: Sequence[Question], generate_kwargs: dict) -> bool:
    """Whether a `describe()` call takes the shared-prefix path.

    Only greedy decoding shares (other generation arguments take `generate()` on the whole prompts). None
    shares when some image gets two or more questions: a single question has nobody to share its prefix with.
    """
    if generate_kwargs and generate_kwargs != {"do_sample": False}:
        return False
    if reuse_prefix is not None:
        return reuse_prefix
    per_image: dict[int, int] = {}
    for q in questions:
        per_image[q.image] = per_image.get(q.image, 0) + 1
    return max(per_image.values(), default=0) > 1


# ---------------------------------------------------------------------------------------------- tokens
def prompt_ids(processor: RegionProcessor, questions: Sequence[Question]) -> list[list[int]]:
    """Token ids of every question's whole generation prompt, exactly as `RegionProcessor.encode_prompt` builds them.

    The same template and the same joining (`RegionProcessor.join_pieces`); the pieces of all questions go to the
    tokenizer in one call, without character offsets.
    """
    tok = processor.spec.tokenizer
    texts, spans = [], []
    for q in questions:
        segments = processor.template.render([Turn("human", q.text)], tok.eos_token, add_generation_prompt=True)
        pieces = "".join(s.text for s in segments).split(IMAGE_TOKEN)
        spans.append((len(texts), len(pieces)))
        texts += pieces
    encoded = tok(texts, add_special_tokens=True).input_ids if texts else []
    out = []
    for q, (start, count) in zip(questions, spans, strict=True):
        ids, _ = processor.join_pieces(encoded[start : start + count], processor.image_expansion(len(q.refs)))
        out.append(ids)
    return out


def _keys(ids: list[int], refs: list[int], mask_id: int, pos_id: int, vocab: int) -> np.ndarray:
    """Ids with each region placeholder replaced by a key naming its region (so prefixes compare regions too)."""
    key = np.asarray(ids, dtype=np.int64)
    for token, offset in ((mask_id, 0), (pos_id, 1)):
        where = np.flatnonzero(key == token)
        if len(where) != len(refs):
            raise ValueError(f"a prompt has {len(where)} region placeholders but {len(refs)} regions")
        key[where] = vocab + 2 * np.asarray(refs, dtype=np.int64) + offset
    return key


def shared_prefix_length(keys: Sequence[np.ndarray]) -> int:
    """Longest common prefix of all key rows, leaving every row at least one token of its own."""
    length = min(len(k) for k in keys) - 1
    first = keys[0]
    for other in keys[1:]:
        differ = np.flatnonzero(first[:length] != other[:length])
        if len(differ):
            length = int(differ[0])
    return max(length, 0)


# ---------------------------------------------------------------------------------------------- vision
def region_table(
    model: Any,
    processor: RegionProcessor,
    image: np.ndarray,
    regions: list[Region],
    features: list[torch.Tensor],
    pixel_values: torch.Tensor,
) -> torch.Tensor:
    """(N, 2, D) region tokens of one image, each region resized and extracted once.

    Args:
        model: The region VLM (`region_tokens`, `device`).
        processor: Its processor (mask/box resizing as in training).
        image: The HxWx3 image.
        regions: Its regions (masks or boxes as the model needs).
        features: The image's encoder levels (batch of one).
        pixel_values: (1, 3, H, W) model input of the image.
    """
    h, w = image.shape[:2]
    size = tuple(pixel_values.shape[-2:])
    if not regions:
        return features[0].new_zeros((0, 2, model.llm.hidden_size))
    if processor.spec.region_kind == "mask":
        parts = []
        for start in range(0, len(regions), MASK_CHUNK):
            masks = np.stack([r.to_mask(h, w) for r in regions[start : start + MASK_CHUNK]])
            parts.append(processor.mask_tensor(masks))
        batch = {"region_masks": torch.cat(parts).to(model.device)}
    else:
        boxes = np.array([r.to_box() for r in regions], dtype=np.float32).reshape(-1, 4)
        batch = {"region_boxes": processor.box_tensor(boxes, h, w).to(model.device)}
    index = torch.zeros(len(regions), dtype=torch.long, device=model.device)
    return model.region_tokens(features, batch, index, size, pixel_values)


def _splice(
    model: Any,
    rows: list[list[int]],
    row_refs: list[list[int]],
    offsets: list[tuple[int, int, int]],
    image_tokens: torch.Tensor,
    table: torch.Tensor,
    pad_to: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded embeddings (B, pad_to, D) of id rows with visual tokens at their placeholders, and the mask.

    `offsets[b]` holds how many image, mask and pos placeholders precede row b (in the prefix before it), so
    each placeholder takes the token it takes in the whole prompt.
    """
    pad = model.llm.tokenizer.pad_token_id
    ids = torch.full((len(rows), pad_to), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), pad_to), dtype=torch.long)
    for b, row in enumerate(rows):
        if row:
            ids[b, pad_to - len(row) :] = torch.tensor(row)
            attention[b, pad_to - len(row) :] = 1
    ids, attention = ids.to(model.device), attention.to(model.device)
    is_img, is_mask, is_pos = ids == model.image_id, ids == model.mask_id, ids == model.pos_id
    embeds = model.llm.embed(ids.masked_fill(is_img | is_mask | is_pos, pad))
    n = image_tokens.shape[0]
    bank = torch.cat([image_tokens, table[:, 0], table[:, 1]]).to(embeds.dtype)
    sources = torch.zeros_like(ids)
    for b in range(len(rows)):
        img0, mask0, pos0 = offsets[b]
        refs = torch.as_tensor(row_refs[b], dtype=torch.long, device=ids.device)
        for flag, base, first in ((is_img[b], 0, img0), (is_mask[b], n, mask0), (is_pos[b], n + len(table), pos0)):
            where = flag.nonzero().squeeze(1)
            if not len(where):
                continue
            ordinal = torch.arange(first, first + len(where), device=ids.device)
            sources[b, where] = base + (ordinal % n if base == 0 else refs[ordinal])
    visual = is_img | is_mask | is_pos
    embeds = embeds.clone()
    embeds[visual] = bank[sources[visual]]
    return embeds, attention


@torch.no_grad()
def answer_questions(
    model: Any,
    images: list[np.ndarray],
    regions: list[list[Region]],
    questions: list[Question],
    max_new_tokens: int | None = None,
) -> list[str]:
    """Greedy answers to `questions`, each image encoded once, each region extracted once, shared prefixes once.

    Args:
        model: A region VLM with region tokens (Aquila-plus, MGIMM).
        images: The unique HxWx3 uint8 images.
        regions: Per image, its regions (every index a question's `refs` names).
        questions: The prompts.
        max_new_tokens: Generation length (None: the model's).

    Returns:
        One answer per question, in order.
    """
    if not questions:
        return []
    max_new_tokens = max_new_tokens or model.hparams.max_new_tokens
    was_training = model.training
    model.eval()
    try:
        return _answer(model, images, regions, questions, max_new_tokens)
    finally:
        model.train(was_training)


def _answer(
    model: Any, images: list[np.ndarray], regions: list[list[Region]], questions: list[Question], max_new_tokens: int
) -> list[str]:
    processor = RegionProcessor(model.input_spec(), max_length=1 << 30)
    tok = model.llm.tokenizer
    ids = prompt_ids(processor, questions)
    vocab = max(len(tok), int(model.llm.model.get_input_embeddings().num_embeddings))
    groups: dict[tuple[int, int], _Group] = {}
    for i, q in enumerate(questions):
        groups.setdefault((q.image, q.group), _Group(q.image)).members.append(i)
    answers: list[str] = [""] * len(questions)
    encoded: dict[int, tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]] = {}
    for group in groups.values():
        if group.image not in encoded:
            pixels = processor.image_tensor(images[group.image])[None].to(model.device, model._compute_dtype())
            features = model.encode(pixels)
            level = features[model.encoder.image_level]
            image_tokens = model.projector(level.flatten(2).transpose(1, 2))[0]
            table = region_table(model, processor, images[group.image], regions[group.image], features, pixels)
            encoded = {group.image: (pixels, features, image_tokens, table)}  # one image held at a time
        _, _, image_tokens, table = encoded[group.image]
        members = group.members
        keys = [_keys(ids[i], questions[i].refs, model.mask_id, model.pos_id, vocab) for i in members]
        p = shared_prefix_length(keys) if len(members) > 1 else 0
        head = ids[members[0]][:p]
        counts = (head.count(model.image_id), head.count(model.mask_id), head.count(model.pos_id))
        prefix = None
        if p:
            head_refs = questions[members[0]].refs[: counts[1]]
            prefix, _ = _splice(model, [head], [head_refs], [(0, 0, 0)], image_tokens, table, p)
        tails = [ids[i][p:] for i in members]
        suffix, mask = _splice(
            model,
            tails,
            [questions[i].refs for i in members],
            [counts] * len(members),
            image_tokens,
            table,
            max(len(t) for t in tails),
        )
        tokens = greedy_from_prefix(model, prefix, suffix, mask, max_new_tokens)
        for i, text in zip(members, tok.batch_decode(tokens, skip_special_tokens=True), strict=True):
            answers[i] = text.strip()
    return answers
