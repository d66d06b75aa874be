import pytest
import torch

from rsvlm_zoo import build_model, list_models, register_model
from rsvlm_zoo.models import AquilaPlus
from rsvlm_zoo.registry import UnknownModelError


def test_list_models_sorted_and_filtered():
    names = list_models()
    assert names == sorted(names)
    assert {"aquila_plus_7b", "aquila_plus_tiny"} <= set(names)
    assert list_models("aquila*") == [n for n in names if n.startswith("aquila")]
    assert list_models("nothing*") == []


def test_unknown_name_names_close_matches():
    with pytest.raises(UnknownModelError, match="aquila_plus_tiny"):
        build_model("aquila_plus_tin")


def test_none_overrides_keep_the_variant_unless_none_means_off():
    model = build_model("aquila_plus_tiny", stage=None, lr=1e-4)
    assert isinstance(model, AquilaPlus)
    assert model.stage == 3 and model.hparams.lr == 1e-4  # stage cannot be None: the variant's is kept


def test_none_switches_lora_off():
    from rsvlm_zoo.models.aquila_plus import _create_aquila_plus
    from rsvlm_zoo.models.lora import LoraSettings
    from rsvlm_zoo.weights.pretrained import llm_block

    defaults = {"encoder": {"model_name": "test_convnext"}, "llm": llm_block("tiny_llama"), "stage": 3}
    with_lora = _create_aquila_plus(False, {**defaults, "lora": LoraSettings(r=4, alpha=8)}, {})
    assert with_lora.lora is not None
    without = _create_aquila_plus(False, {**defaults, "lora": LoraSettings(r=4, alpha=8)}, {"lora": None})
    assert without.lora is None and without.hparams.lora is None


def test_register_model_rejects_a_taken_name():
    def aquila_plus_tiny(pretrained=False, **kw):  # same name, other function
        return None

    with pytest.raises(ValueError, match="already registered"):
        register_model(aquila_plus_tiny)


def test_full_size_builds_on_meta_with_published_extractor_size():
    with torch.device("meta"):
        model = build_model("aquila_plus_7b", llm={"tokenizer": "builtin"})  # no local Vicuna tokenizer here
    counts = model.num_parameters()
    # Osprey's extractor at D=4096: 4 level linears + 1024->4096 + 12544->1024->1024->4096 MLP.
    expected = (192 + 384 + 768 + 1536 + 4) * 1024 + 1024 * 4096 + 4096
    expected += 12544 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 4096 + 4096
    assert counts["extractor"] == expected
    assert 24e6 < counts["extractor"] < 26e6
    assert 6.5e9 < counts["llm"] < 7.0e9
    assert model.encoder.channels == [192, 384, 768, 1536] and model.encoder.reductions == [4, 8, 16, 32]
    assert model.encoder.num_image_tokens == 1024


def test_pretrained_without_local_weights_fails_fast_naming_the_fix(tmp_path, monkeypatch):
    from rsvlm_zoo.weights.files import MissingWeightsError

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="weights"):
        build_model("aquila_plus_7b", pretrained=True)
