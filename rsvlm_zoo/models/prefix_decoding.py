"""Greedy decoding of a batch of prompts that share a prefix: the prefix runs once, its KV cache is repeated.

Used by `rsvlm_zoo.models.shared_prefix` (see there for how prompts are split into a shared prefix and
left-padded suffixes whose positions continue the prefix's).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch


def _cache_keyword(lm: Any) -> str:
    """The forward argument that takes the KV cache: `cache` in newer transformers, `past_key_values` before."""
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


@functools.cache
def _buffered_layer_type() -> type:
    """`BufferedLayer`, defined once, on first use (transformers is imported only when decoding)."""
    from transformers.cache_utils import DynamicLayer

    class BufferedLayer(DynamicLayer):
        """A `DynamicLayer` whose keys and values are views of one buffer of `capacity` positions.

        A dynamic cache copies all its keys and values at every step (`torch.cat`); with hundreds of questions
        sharing a long prefix that copying is most of decoding. Here new positions are written into the buffer
        and the keys and values stay views of it, with the values and shapes a dynamic layer would hold, so
        attention computes exactly what it computed before. Past the capacity it grows as a dynamic layer.
        """

        def __init__(self, layer: DynamicLayer, capacity: int) -> None:
            super().__init__()
            self.__dict__.update(layer.__dict__)  # device, dtype and the held keys and values
            held = layer.keys.shape[-2]
            self.buffers: list[torch.Tensor] | None = []
            for tensor in (layer.keys, layer.values):
                buffer = tensor.new_empty((*tensor.shape[:-2], capacity, tensor.shape[-1]))
                buffer[..., :held, :] = tensor
                self.buffers.append(buffer)
            self.keys, self.values = self.buffers[0][..., :held, :], self.buffers[1][..., :held, :]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            """Write the new positions into the buffer and return views up to them."""
            if not self.is_initialized or self.buffers is None:
                return super().update(key_states, value_states, *args, **kwargs)
            start, stop = self.keys.shape[-2], self.keys.shape[-2] + key_states.shape[-2]
            if stop > self.buffers[0].shape[-2]:  # past the planned capacity: grow as a dynamic cache does
                self.buffers = None
                return super().update(key_states, value_states, *args, **kwargs)
            for buffer, new in zip(self.buffers, (key_states, value_states), strict=True):
                buffer[..., start:stop, :] = new
            self.keys, self.values = self.buffers[0][..., :stop, :], self.buffers[1][..., :stop, :]
            return self.keys, self.values

    return BufferedLayer


def _preallocate(cache: Any, capacity: int) -> None:
    """Replace every filled dynamic layer of `cache` with a `BufferedLayer` of `capacity` positions."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", [])
    for i, layer in enumerate(layers):
        if type(layer) is DynamicLayer and layer.is_initialized and layer.keys.numel():
            layers[i] = _buffered_layer_type()(layer, capacity)


@torch.no_grad()
def greedy_from_prefix(
    model: Any,
    prefix: torch.Tensor | None,
    suffix: torch.Tensor,
    suffix_mask: torch.Tensor,
    max_new_tokens: int,
    scores: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Greedy tokens (B, T) for B prompts that share `prefix` (1, P, D) and end in left-padded `suffix` (B, S, D).

    The prefix runs once; its cache is repeated over the batch. Positions follow the unpadded prompt
    (prefix 0..P-1, then each row's own tokens), padding is masked. As `generate`'s greedy search: stops when
    every row has produced end-of-sequence, later tokens of a finished row are the pad token. When `scores` is
    a list, each step's (B, vocab) logits are appended to it.
    """
    from transformers import DynamicCache

    lm = model.llm.model
    tok = model.llm.tokenizer
    batch = suffix.shape[0]
    device = suffix.device
    cache = DynamicCache()
    keyword = _cache_keyword(lm)
    length = 0
    if prefix is not None and prefix.shape[1]:
        length = prefix.shape[1]
        positions = torch.arange(length, device=device).unsqueeze(0)
        lm(
            inputs_embeds=prefix,
            attention_mask=torch.ones(1, length, dtype=torch.long, device=device),
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{keyword: cache},
        )
        cache.batch_repeat_interleave(batch)
    _preallocate(cache, length + suffix.shape[1] + max_new_tokens)
    attention = torch.cat([torch.ones(batch, length, dtype=torch.long, device=device), suffix_mask], dim=1)
    positions = (length + suffix_mask.cumsum(1) - 1).clamp(min=0)
    embeds = suffix
    eos = tok.eos_token_id
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    out = []
    for _ in range(max_new_tokens):
        logits = lm(
            inputs_embeds=embeds,
            attention_mask=attention,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{keyword: cache},
        ).logits[:, -1]
        if scores is not None:
            scores.append(logits)
        nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, tok.pad_token_id), nxt)
        out.append(nxt)
        done |= nxt == eos
        if bool(done.all()):
            break
        embeds = model.llm.embed(nxt[:, None])
        attention = torch.cat([attention, torch.ones(batch, 1, dtype=torch.long, device=device)], dim=1)
        positions = positions[:, -1:] + 1
    return torch.stack(out, 1) if out else torch.zeros(batch, 0, dtype=torch.long, device=device)
