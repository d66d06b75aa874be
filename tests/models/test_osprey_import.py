import pytest
import torch

from rsvlm_zoo.models.osprey_import import load_osprey_state_dict


def osprey_state(model) -> dict[str, torch.Tensor]:
    """A state dict with Osprey's names and this model's shapes, filled with known values."""
    ext, proj, lm = model.extractor, model.projector, model.llm.model
    g = torch.Generator().manual_seed(0)
    state = {}
    for i, level in enumerate(["res2", "res3", "res4", "res5"]):
        for kind in ("weight", "bias"):
            state[f"model.mask_extractor.{level}.{kind}"] = torch.randn(
                getattr(ext.level_proj[i], kind).shape, generator=g
            )
    for kind in ("weight", "bias"):
        state[f"model.mask_extractor.feat_linear.{kind}"] = torch.randn(getattr(ext.mask_proj, kind).shape, generator=g)
        for j, ours in enumerate([0, 2, 4]):
            shape = getattr(ext.pos_mlp[ours], kind).shape
            state[f"model.mask_extractor.mask_linear.layers.{j}.{kind}"] = torch.randn(shape, generator=g)
        for j in (0, 2):
            state[f"model.mm_projector.{j}.{kind}"] = torch.randn(getattr(proj.net[j], kind).shape, generator=g)
    for name, value in lm.state_dict().items():
        state[name] = torch.randn(value.shape, generator=g)
    state["model.vision_tower.vision_tower.trunk.stem.0.weight"] = torch.randn(4, 3, 4, 4, generator=g)
    return state


def test_osprey_names_land_on_the_right_parameters():
    from rsvlm_zoo import build_model

    model = build_model("aquila_plus_tiny", extractor={"pool_pixels": False})
    state = osprey_state(model)
    untouched = load_osprey_state_dict(model, state)
    assert all(n.startswith("encoder.") for n in untouched)
    torch.testing.assert_close(model.extractor.level_proj[2].weight, state["model.mask_extractor.res4.weight"])
    torch.testing.assert_close(model.extractor.mask_proj.bias, state["model.mask_extractor.feat_linear.bias"])
    torch.testing.assert_close(
        model.extractor.pos_mlp[4].weight, state["model.mask_extractor.mask_linear.layers.2.weight"]
    )
    torch.testing.assert_close(model.projector.net[2].weight, state["model.mm_projector.2.weight"])
    torch.testing.assert_close(
        model.llm.model.model.layers[1].mlp.up_proj.weight, state["model.layers.1.mlp.up_proj.weight"]
    )
    torch.testing.assert_close(model.llm.model.lm_head.weight, state["lm_head.weight"])


def test_shape_mismatch_names_both_shapes():
    from rsvlm_zoo import build_model

    model = build_model("aquila_plus_tiny", extractor={"pool_pixels": False})
    state = osprey_state(model)
    state["model.mm_projector.0.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r"projector.net.0.weight: Osprey has shape \(3, 3\)"):
        load_osprey_state_dict(model, state)
