"""Everything together at full width on the CPU: Vicuna-width LLM (2 layers) in 4-bit NF4 + LoRA + non-reentrant
gradient checkpointing, full-size encoders loaded from timm-layout files, bfloat16 autocast over float32 master
weights (the full-size recipes' bf16-mixed); one optimisation step each (slow; CI step 2)."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.full_size import build_full_width, full_width_batch, train_one_step, write_encoder_weights

pytestmark = pytest.mark.slow

TRAINED = {"aquila_plus": ("extractor", "projector", "llm"), "mgimm": ("extractor", "projector", "llm")}


@pytest.mark.parametrize("family", ["aquila_plus", "mgimm"])
def test_full_width_qlora_step(family, tmp_path):
    import bitsandbytes as bnb

    torch.manual_seed(0)
    model = build_full_width(family, layers=2, weights=write_encoder_weights(family, tmp_path / family))
    llm = model.llm.model.get_base_model()
    assert llm.config.hidden_size == 4096 and llm.config.intermediate_size == 11008
    assert llm.config.num_attention_heads == 32 and llm.config.vocab_size == 32000
    assert isinstance(llm.model.layers[0].mlp.up_proj.base_layer, bnb.nn.Linear4bit)
    assert llm.is_gradient_checkpointing
    assert llm.model.layers[0]._gradient_checkpointing_func.keywords["use_reentrant"] is False
    assert model.encoder.weights_loaded and next(model.encoder.parameters()).dtype == torch.bfloat16
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if n in trained)
    assert all(n.split(".")[0] in TRAINED[family] for n in trained)
    assert all("lora_" in n for n in trained if n.startswith("llm."))
    before = {n: p.detach().float().clone() for n, p in model.named_parameters()}
    batch = full_width_batch(model, tokens=model.encoder.num_image_tokens + 64)
    loss = train_one_step(model, batch)
    assert math.isfinite(loss)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach().float(), before[n])}
    assert changed <= trained, sorted(changed - trained)[:5]
    for block in TRAINED[family]:
        assert any(n.startswith(block + ".") for n in changed), f"{block} did not train"
