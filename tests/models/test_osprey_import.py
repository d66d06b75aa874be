import argparse
import json

import pytest
import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.weights.osprey_import import load_llava_projector, load_osprey_state_dict


def osprey_state(model) -> dict[str, torch.Tensor]:
    """A state dict with Osprey's names and this model's shapes, filled with known values."""
    ext, proj, lm = model.extractor, model.projector, model.llm.model
    g = torch.Generator().manual_seed(0)
    state = {}
    for i, level in enumerate(["res2", "res3", "res4", "res5"]):
        for kind in ("weight", "bias"):
            state[f"mask_extractor.{level}.{kind}"] = torch.randn(getattr(ext.level_proj[i], kind).shape, generator=g)
    for kind in ("weight", "bias"):
        state[f"mask_extractor.feat_linear.{kind}"] = torch.randn(getattr(ext.mask_proj, kind).shape, generator=g)
        for j, ours in enumerate([0, 2, 4]):
            shape = getattr(ext.pos_mlp[ours], kind).shape
            state[f"mask_extractor.mask_linear.layers.{j}.{kind}"] = torch.randn(shape, generator=g)
        for j in (0, 2):
            state[f"model.mm_projector.{j}.{kind}"] = torch.randn(getattr(proj.net[j], kind).shape, generator=g)
    for name, value in lm.state_dict().items():
        if "lora_" not in name:  # Osprey's names are the plain Llama ones, whatever wraps the model here
            state[name.replace("base_model.model.", "").replace(".base_layer.", ".")] = torch.randn(
                value.shape, generator=g
            )
    state["model.vision_tower.vision_tower.trunk.stem.0.weight"] = torch.randn(4, 3, 4, 4, generator=g)
    return state


def test_osprey_names_land_on_the_right_parameters():
    model = build_model("aquila_plus_tiny", extractor={"pool_pixels": False})
    state = osprey_state(model)
    untouched = load_osprey_state_dict(model, state)
    assert all(n.startswith("encoder.") for n in untouched)
    torch.testing.assert_close(model.extractor.level_proj[2].weight, state["mask_extractor.res4.weight"])
    torch.testing.assert_close(model.extractor.mask_proj.bias, state["mask_extractor.feat_linear.bias"])
    torch.testing.assert_close(model.extractor.pos_mlp[4].weight, state["mask_extractor.mask_linear.layers.2.weight"])
    torch.testing.assert_close(model.projector.net[2].weight, state["model.mm_projector.2.weight"])
    torch.testing.assert_close(
        model.llm.model.model.layers[1].mlp.up_proj.weight, state["model.layers.1.mlp.up_proj.weight"]
    )
    torch.testing.assert_close(model.llm.model.lm_head.weight, state["lm_head.weight"])


def test_shape_mismatch_names_both_shapes():
    model = build_model("aquila_plus_tiny", extractor={"pool_pixels": False})
    state = osprey_state(model)
    state["model.mm_projector.0.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r"projector.net.0.weight: Osprey has shape \(3, 3\)"):
        load_osprey_state_dict(model, state)


def write_sharded(state, folder, safetensors=False):
    """Osprey-7b's on-disk form: two shards and the Hugging Face index naming each tensor's shard."""
    folder.mkdir()
    keys = sorted(state)
    halves = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    weight_map = {}
    for k, part in enumerate(halves, start=1):
        if safetensors:
            from safetensors.torch import save_file

            name = f"model-0000{k}-of-00002.safetensors"
            save_file({key: state[key].contiguous() for key in part}, str(folder / name))
        else:
            name = f"pytorch_model-0000{k}-of-00002.bin"
            torch.save({key: state[key] for key in part}, folder / name)
        weight_map.update(dict.fromkeys(part, name))
    index = "model.safetensors.index.json" if safetensors else "pytorch_model.bin.index.json"
    (folder / index).write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return folder


@pytest.mark.parametrize("safetensors", [False, True])
def test_a_sharded_osprey_checkpoint_imports_under_lora_with_osprey_sized_embeddings(tmp_path, safetensors):
    model = build_model("aquila_plus_tiny", extractor={"pool_pixels": False}, lora={"r": 4, "alpha": 8})
    state = osprey_state(model)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):  # Osprey never resizes: 3 rows fewer here
        state[name] = state[name][:-3].clone()
    added_before = model.llm.model.get_input_embeddings().weight[-3:].detach().clone()
    untouched = load_osprey_state_dict(model, write_sharded(state, tmp_path / "osprey-7b", safetensors))
    assert all(n.startswith("encoder.") or "lora_" in n for n in untouched)
    base = model.llm.model.get_base_model()
    q = base.model.layers[0].self_attn.q_proj
    torch.testing.assert_close(q.base_layer.weight, state["model.layers.0.self_attn.q_proj.weight"])
    rows = base.get_input_embeddings().weight
    torch.testing.assert_close(rows[:-3], state["model.embed_tokens.weight"])
    torch.testing.assert_close(rows[-3:], added_before)
    torch.testing.assert_close(model.extractor.level_proj[0].bias, state["mask_extractor.res2.bias"])


def test_an_osprey_shard_that_needs_pickle_is_refused(tmp_path):
    from rsvlm_zoo.weights.files import UnsafeWeightsError

    model = build_model("aquila_plus_tiny", extractor={"pool_pixels": False})
    folder = write_sharded(osprey_state(model), tmp_path / "osprey")
    torch.save({"args": argparse.Namespace(x=1), "w": torch.zeros(1)}, folder / "pytorch_model-00001-of-00002.bin")
    with pytest.raises(UnsafeWeightsError, match="refusing to read .*pytorch_model-00001-of-00002.bin"):
        load_osprey_state_dict(model, folder)


def test_llava_mm_projector_initialises_the_mgimm_projector(tmp_path):
    model = build_model("mgimm_tiny")
    g = torch.Generator().manual_seed(1)
    state = {
        f"model.mm_projector.{i}.{kind}": torch.randn(getattr(model.projector.net[i], kind).shape, generator=g)
        for i in (0, 2)
        for kind in ("weight", "bias")
    }
    torch.save(state, tmp_path / "mm_projector.bin")
    load_llava_projector(model, tmp_path / "mm_projector.bin")
    torch.testing.assert_close(model.projector.net[0].weight, state["model.mm_projector.0.weight"])
    torch.testing.assert_close(model.projector.net[2].bias, state["model.mm_projector.2.bias"])
    state["model.mm_projector.0.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "bad.bin")
    with pytest.raises(ValueError, match=r"projector.net.0.weight: LLaVA has shape \(2, 2\)"):
        load_llava_projector(model, tmp_path / "bad.bin")
