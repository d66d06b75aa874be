import pytest
import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.models.lora import LoraSettings
from tests.models.test_aquila_plus import train_batch


def qlora_model():
    torch.manual_seed(0)
    return build_model(
        "aquila_plus_tiny", llm={"load_in_4bit": True, "compute_dtype": "float32"}, lora=LoraSettings(r=8, alpha=16)
    )


def test_4bit_llm_with_lora_trains_only_intended_parameters():
    import bitsandbytes as bnb

    model = qlora_model()
    linear4 = [m for m in model.llm.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert linear4, "the LLM's projections are 4-bit"
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in model.extractor.modules())
    assert model.extractor.mask_proj.weight.dtype == torch.float32
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in n for n in trainable if n.startswith("llm."))
    assert not any(n.startswith("encoder.") for n in trainable)
    batch = train_batch(model, n=4)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = model(batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0 and losses == sorted(losses, reverse=True), losses
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and changed <= trainable
    assert any("lora_" in n for n in changed) and any(n.startswith("extractor.") for n in changed)


def test_4bit_without_lora_is_refused():
    with pytest.raises(ValueError, match="4-bit LLM cannot be fine-tuned directly"):
        build_model("aquila_plus_tiny", llm={"load_in_4bit": True, "compute_dtype": "float32"})


def test_4bit_without_bitsandbytes_names_the_qlora_extra(monkeypatch):
    import importlib.util

    from rsvlm_zoo.models.blocks.llms import MissingExtraError

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else find_spec(name, *a)
    )
    with pytest.raises(MissingExtraError, match=r"rsvlm_zoo\[qlora\]"):
        qlora_model()


def test_bitsandbytes_is_only_in_the_qlora_extra():
    from importlib.metadata import requires

    reqs = [r.replace(" ", "") for r in requires("rsvlm_zoo") or []]
    bnb = [r for r in reqs if r.startswith("bitsandbytes")]
    assert bnb and all("extra==" in r for r in bnb), bnb
    assert any('extra=="qlora"' in r for r in bnb), bnb
