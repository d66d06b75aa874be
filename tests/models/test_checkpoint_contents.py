"""Checkpoints keep the trained tensors and what cannot be rebuilt; loading restores the exact model."""

import lightning as L
import pytest
import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.datamodules import RegionDataModule, SyntheticSource
from rsvlm_zoo.models import AquilaPlus
from rsvlm_zoo.models.blocks.llms import HFCausalLM
from rsvlm_zoo.weights.checkpoint_contents import MARKER, check_loadable
from rsvlm_zoo.weights.pretrained import PRETRAINED_CFGS


@pytest.fixture(scope="module")
def local_llm_dir(tmp_path_factory):
    """A tiny Llama saved as a local pretrained directory (stands in for Vicuna in the local cache)."""
    path = tmp_path_factory.mktemp("llm")
    torch.manual_seed(1)
    HFCausalLM(config=PRETRAINED_CFGS["tiny_llama"].config, tokenizer="builtin").model.save_pretrained(path)
    return path


TRAINER = {
    "accelerator": "cpu",
    "logger": False,
    "enable_checkpointing": False,
    "limit_val_batches": 0,
    "num_sanity_val_steps": 0,
    "enable_progress_bar": False,
}


def data_module() -> RegionDataModule:
    return RegionDataModule(
        train=SyntheticSource(16, seed=0),
        val=SyntheticSource(2, seed=1, one_question_per_sample=True),
        batch_size=4,
        num_workers=0,
        max_length=256,
    )


def lora_model(llm_dir, seed: int, **kwargs) -> AquilaPlus:
    torch.manual_seed(seed)
    base = build_model("aquila_plus_tiny")
    llm = HFCausalLM(name_or_path=str(llm_dir), pretrained=True, tokenizer="builtin")
    options = {"stage": 3, "lr": 1e-3, "lora": {"r": 4, "alpha": 8, "dropout": 0.0}} | kwargs
    return AquilaPlus(encoder=base.encoder, extractor=base.extractor, projector=base.projector, llm=llm, **options)


def train_and_save(model, path, root):
    trainer = L.Trainer(max_steps=2, default_root_dir=root, **TRAINER)
    trainer.fit(model, data_module())
    trainer.save_checkpoint(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def test_lora_checkpoint_leaves_out_the_frozen_pretrained_llm_and_restores_exactly(local_llm_dir, tmp_path):
    model = lora_model(local_llm_dir, seed=0)
    ckpt = train_and_save(model, tmp_path / "run.ckpt", tmp_path)
    state = ckpt["state_dict"]
    llm_keys = [k for k in state if k.startswith("llm.")]
    assert llm_keys and all("lora_" in k for k in llm_keys)
    # The frozen pretrained encoder (ImageNet Lite0) is rebuilt from its weights, so it is left out like the LLM;
    # the trained extractor and projector are kept.
    assert model.encoder.weights_loaded and not any(k.startswith("encoder.") for k in state)
    assert any(k.startswith("extractor.") for k in state) and any(k.startswith("projector.") for k in state)
    kept = sum(t.numel() for k, t in state.items() if k.startswith("llm."))
    assert kept < 0.1 * sum(t.numel() for t in model.llm.state_dict().values())
    assert ckpt[MARKER]["trimmed"] and ckpt[MARKER]["dropped_tensors"] > 0

    # A model rebuilt from the same config (other random seed) becomes the trained one.
    fresh = lora_model(local_llm_dir, seed=123)
    fresh.on_load_checkpoint(ckpt)
    fresh.load_state_dict(ckpt["state_dict"], strict=fresh.strict_loading)
    trained, restored = model.state_dict(), fresh.state_dict()
    assert trained.keys() == restored.keys()
    for key, value in trained.items():
        assert torch.equal(value, restored[key]), key


def test_lightning_resumes_from_a_trimmed_checkpoint(local_llm_dir, tmp_path):
    ckpt_path = tmp_path / "run.ckpt"
    train_and_save(lora_model(local_llm_dir, seed=0), ckpt_path, tmp_path)
    model = lora_model(local_llm_dir, seed=5)
    trainer = L.Trainer(max_steps=3, default_root_dir=tmp_path, **TRAINER)
    trainer.fit(model, data_module(), ckpt_path=ckpt_path)
    assert trainer.global_step == 3


def test_checkpoint_that_does_not_fit_is_refused(local_llm_dir, tmp_path):
    ckpt = train_and_save(lora_model(local_llm_dir, seed=0), tmp_path / "run.ckpt", tmp_path)
    full_llm = lora_model(local_llm_dir, seed=0, lora=None)  # no adapters: the LoRA tensors have no home
    with pytest.raises(ValueError, match=r"holds 28 tensor\(s\) this model lacks, e\.g\. \['llm\.model\.base_model"):
        check_loadable(full_llm, ckpt)
    target = lora_model(local_llm_dir, seed=0)
    key = next(k for k in ckpt["state_dict"] if k.startswith("extractor."))
    del ckpt["state_dict"][key]
    with pytest.raises(ValueError, match=rf"lacks 1 tensor\(s\) this model needs, e\.g\. \['{key}'\]"):
        check_loadable(target, ckpt)


def test_tiny_random_model_checkpoint_keeps_everything(tmp_path):
    # frozen random encoder and LLM: nothing to rebuild them from
    model = build_model("aquila_plus_tiny", stage=1, encoder={"pretrained": False})
    ckpt = train_and_save(model, tmp_path / "run.ckpt", tmp_path)
    assert set(ckpt["state_dict"]) == set(model.state_dict())
    assert ckpt[MARKER]["dropped_tensors"] == 0
