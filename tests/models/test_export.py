"""Exported directories (`rsvlm export`): config + safetensors + peft adapter or merged LLM, loaded back exactly."""

import json

import lightning as L
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from rsvlm_zoo import build_model, from_pretrained
from rsvlm_zoo.cli import main as rsvlm
from rsvlm_zoo.datamodules import RegionDataModule, SyntheticSource
from rsvlm_zoo.models import AquilaPlus
from rsvlm_zoo.models.blocks.llms import HFCausalLM
from rsvlm_zoo.weights.export import export_model
from rsvlm_zoo.weights.pretrained import PRETRAINED_CFGS


@pytest.fixture(scope="module")
def local_llm_dir(tmp_path_factory):
    """A tiny Llama saved as a local pretrained directory (stands in for Vicuna in the local cache)."""
    path = tmp_path_factory.mktemp("llm")
    torch.manual_seed(1)
    HFCausalLM(config=PRETRAINED_CFGS["tiny_llama"].config, tokenizer="builtin").model.save_pretrained(path)
    return path


def lora_model(llm_dir, seed: int = 0) -> AquilaPlus:
    """Tiny Aquila-plus with a pretrained (local) LLM and LoRA whose adapter weights are non-trivial."""
    torch.manual_seed(seed)
    base = build_model("aquila_plus_tiny")
    llm = HFCausalLM(name_or_path=str(llm_dir), pretrained=True, tokenizer="builtin")
    model = AquilaPlus(
        encoder=base.encoder,
        extractor=base.extractor,
        projector=base.projector,
        llm=llm,
        stage=3,
        lora={"r": 4, "alpha": 8, "dropout": 0.0},
    )
    with torch.no_grad():  # LoRA B starts at zero; give the adapter something to carry
        for name, p in model.llm.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.2)
    return model.eval()


def a_batch(model):
    task = "description" if model.input_spec().regions_in_image else "region_qa"
    dm = RegionDataModule(train=SyntheticSource(4, seed=3, task=task), batch_size=4, max_length=320)
    dm.attach(model.input_spec())
    return next(iter(dm.train_dataloader()))


def loss_of(model, batch) -> float:
    with torch.no_grad():
        return float(model.eval()(batch))


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_tiny_model_round_trips_through_an_exported_directory(tmp_path):
    torch.manual_seed(0)
    model = build_model("mgimm_tiny").eval()
    out = export_model(model, tmp_path / "export")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    torch.manual_seed(123)  # a rebuild draws other random weights; the export must overwrite all of them
    again = from_pretrained(str(out))
    assert type(again).__name__ == "MGIMM"
    assert_same_state(model, again)
    batch = a_batch(model)
    assert loss_of(again, batch) == loss_of(model, batch)


def test_lora_export_writes_a_standard_peft_adapter_and_leaves_out_the_frozen_llm(local_llm_dir, tmp_path):
    model = lora_model(local_llm_dir)
    out = export_model(model, tmp_path / "export")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["adapter"] and not cfg["merged"]
    assert (out / "adapter" / "adapter_config.json").is_file()
    from safetensors.torch import load_file

    names = load_file(str(out / "model.safetensors")).keys()
    assert not any(n.startswith("llm.") for n in names), "the frozen pretrained LLM is rebuilt, not exported"
    assert any(n.startswith("extractor.") for n in names) and any(n.startswith("projector.") for n in names)

    # peft alone loads the adapter onto the base LLM and reproduces the trained LLM's logits.
    base = AutoModelForCausalLM.from_pretrained(local_llm_dir)
    peft_llm = PeftModel.from_pretrained(base, out / "adapter").eval()
    ids = torch.tensor([[1, 5, 9, 12, 7]])
    with torch.no_grad():
        torch.testing.assert_close(peft_llm(ids).logits, model.llm.model(ids).logits)

    again = from_pretrained(out)
    assert_same_state(model, again)
    batch = a_batch(model)
    assert loss_of(again, batch) == pytest.approx(loss_of(model, batch), abs=0)


def test_merged_export_is_a_plain_hf_llm_with_the_same_outputs(local_llm_dir, tmp_path):
    model = lora_model(local_llm_dir)
    out = export_model(model, tmp_path / "merged", merge=True)
    assert (out / "llm" / "config.json").is_file() and not (out / "adapter").exists()
    merged = AutoModelForCausalLM.from_pretrained(out / "llm").eval()
    ids = torch.tensor([[1, 5, 9, 12, 7]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, model.llm.model(ids).logits, atol=1e-5, rtol=1e-5)
    again = from_pretrained(out)
    assert again.lora is None
    batch = a_batch(model)
    assert loss_of(again, batch) == pytest.approx(loss_of(model, batch), abs=1e-5)
    assert any("lora_" in n for n, _ in model.llm.named_parameters()), "exporting must not merge the live model"


def test_merge_without_lora_and_existing_directory_are_refused(tmp_path):
    model = build_model("aquila_plus_tiny")
    with pytest.raises(ValueError, match="needs a model with a LoRA adapter"):
        export_model(model, tmp_path / "a", merge=True)
    export_model(model, tmp_path / "b")
    with pytest.raises(FileExistsError, match="already exists"):
        export_model(model, tmp_path / "b")


def test_build_model_with_checkpoint_loads_an_export_and_refuses_another_model(tmp_path):
    torch.manual_seed(0)
    model = build_model("aquila_plus_tiny")
    out = export_model(model, tmp_path / "export")
    again = build_model("aquila_plus_tiny", checkpoint=out)
    assert_same_state(model, again)
    with pytest.raises(ValueError, match="holds .* tensor\\(s\\) this model lacks"):
        build_model("mgimm_tiny", checkpoint=out)


def test_rsvlm_export_from_a_lightning_checkpoint(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model("aquila_plus_tiny", stage=3, lr=1e-3)
    dm = RegionDataModule(train=SyntheticSource(8, seed=0), batch_size=4, max_length=256)
    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
    )
    trainer.fit(model, dm)
    ckpt = tmp_path / "run.ckpt"
    trainer.save_checkpoint(ckpt)

    assert rsvlm(["export", "--model", str(ckpt), "--out", str(tmp_path / "export")]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    assert_same_state(model, from_pretrained(tmp_path / "export"))
    assert_same_state(model, from_pretrained(ckpt))  # the checkpoint alone rebuilds the model too

    assert rsvlm(["export", "--model", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "x")]) == 1
    assert "missing.ckpt (and it is not a registered model name)" in capsys.readouterr().err


def test_save_pretrained_mirrors_from_pretrained_and_both_return_eval_mode(tmp_path):
    torch.manual_seed(0)
    model = build_model("mgimm_tiny")
    assert not model.training  # as Hugging Face models load: training switches the mode itself
    out = model.save_pretrained(tmp_path / "saved")
    loaded = from_pretrained(out)
    assert not loaded.training
    assert_same_state(model, loaded)
