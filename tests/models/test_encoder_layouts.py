"""The encoder blocks load real checkpoint layouts, written by the reference libraries themselves at full size.

Each layout's file is made the way its publisher makes it (timm's state dict as safetensors or torch.save,
OpenCLIP's `open_clip_pytorch_model.bin`, transformers' `save_pretrained`) from random weights, loaded through
the zoo's encoder block, and its feature maps compared with the reference library's forward on the same input.
"""

import gc
import json

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

from rsvlm_zoo.models.blocks.encoders import ConvNeXtCLIPEncoder, ViTCLIPEncoder
from rsvlm_zoo.weights.encoder_weights import WeightsLayoutError
from rsvlm_zoo.weights.files import UnsafeWeightsError
from rsvlm_zoo.weights.pretrained import PRETRAINED_CFGS

CONVNEXT = "convnext_large_mlp.clip_laion2b_ft_soup_320"
VIT = "vit_large_patch14_clip_336.openai"
TOL = 1e-4  # relative max difference, fp32


def rel_diff(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float((ours - ref).abs().max() / ref.abs().max())


def _free(*objs) -> None:
    del objs
    gc.collect()


def _image(size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))


def _hf_vit_l_336_config(**overrides):
    from transformers import CLIPVisionConfig

    args = dict(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=336,
        patch_size=14,
        projection_dim=768,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    return CLIPVisionConfig(**{**args, **overrides})


@pytest.fixture(scope="module")
def timm_vit_file(tmp_path_factory):
    """Full-size `vit_large_patch14_clip_336.openai` in timm's hub layout, and timm's block -2 at 336 px.

    The reference runs QuickGELU, the activation OpenAI trained these weights with, which the pretrained
    configuration gives the encoder (timm's own model of this name runs GELU).
    """
    torch.manual_seed(0)
    ref = timm.create_model(VIT, pretrained=False, act_layer="quick_gelu").eval()
    path = tmp_path_factory.mktemp("timm_vit") / "model.safetensors"
    save_file(ref.state_dict(), str(path))
    x = _image((336, 336))
    with torch.no_grad():
        expected = ref.forward_intermediates(x, indices=[22], norm=False, output_fmt="NCHW", intermediates_only=True)
    _free(ref)
    return path, x, expected[0]


def test_timm_convnext_layout_matches_timm(tmp_path):
    torch.manual_seed(0)
    ref = timm.create_model(CONVNEXT, pretrained=False).eval()
    save_file(ref.state_dict(), str(tmp_path / "model.safetensors"))
    x = _image((128, 128))
    with torch.no_grad():
        expected = ref.forward_intermediates(x, intermediates_only=True)
    _free(ref)
    enc = ConvNeXtCLIPEncoder(CONVNEXT, weights=str(tmp_path), input_size=(128, 128)).eval()  # the directory
    assert enc.weights_loaded
    with torch.no_grad():
        maps = enc(x)
    assert len(maps) == len(expected) == 4
    diffs = [rel_diff(m, e) for m, e in zip(maps, expected, strict=True)]
    print(f"timm ConvNeXt-L relative max differences per stage: {diffs}")
    assert max(diffs) <= TOL


def test_open_clip_convnext_layout_matches_its_trunk(tmp_path):
    import open_clip

    torch.manual_seed(0)
    clip = open_clip.create_model("convnext_large_d_320").eval()
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(clip.state_dict(), path)
    x = _image((128, 128))
    trunk = clip.visual.trunk
    expected = []
    with torch.no_grad():  # what Osprey reads: the trunk's stem, then each stage's output
        h = trunk.stem(x)
        for stage in trunk.stages:
            h = stage(h)
            expected.append(h)
    _free(clip, trunk, h)
    enc = ConvNeXtCLIPEncoder(CONVNEXT, weights=str(path), input_size=(128, 128)).eval()
    with torch.no_grad():
        maps = enc(x)
    diffs = [rel_diff(m, e) for m, e in zip(maps, expected, strict=True)]
    print(f"OpenCLIP convnext_large_d_320 relative max differences per stage: {diffs}")
    assert max(diffs) <= TOL


def test_timm_vit_layout_matches_timm_at_native_size(timm_vit_file):
    path, x, expected = timm_vit_file
    enc = ViTCLIPEncoder(VIT, weights=str(path)).eval()
    with torch.no_grad():
        (out,) = enc(x)
    diff = rel_diff(out, expected)
    print(f"timm ViT-L/14-336 relative max difference: {diff:.3g}")
    assert diff <= TOL


def test_openai_vit_defaults_come_from_its_pretrained_configuration(timm_vit_file):
    path, _, _ = timm_vit_file
    enc = ViTCLIPEncoder(VIT, weights=str(path))
    assert enc.input_size == (336, 336) and enc.mean == PRETRAINED_CFGS[VIT].mean
    assert type(enc.model.blocks[0].mlp.act).__name__ == "QuickGELU"
    gelu = ViTCLIPEncoder(VIT, weights=str(path), model_kwargs={"act_layer": "gelu"})  # the caller's choice wins
    assert type(gelu.model.blocks[0].mlp.act).__name__ == "GELU"


def test_vit_at_a_non_native_size_resamples_position_embeddings_as_timm(timm_vit_file):
    path, _, _ = timm_vit_file
    size = (112, 168)  # 8 x 12 patches from the file's 24 x 24 grid
    ref = timm.create_model(
        VIT,
        pretrained=True,
        pretrained_cfg_overlay={"file": str(path)},
        num_classes=0,
        img_size=size,
        act_layer="quick_gelu",
    ).eval()  # timm's own loading: its checkpoint filter resamples pos_embed
    x = _image(size, seed=1)
    with torch.no_grad():
        (expected,) = ref.forward_intermediates(x, indices=[22], norm=False, output_fmt="NCHW", intermediates_only=True)
    ref_pos = ref.pos_embed.detach().clone()
    _free(ref)
    enc = ViTCLIPEncoder(VIT, weights=str(path), input_size=size).eval()
    assert enc.model.pos_embed.shape == ref_pos.shape == (1, 1 + 8 * 12, 1024)
    torch.testing.assert_close(enc.model.pos_embed.detach(), ref_pos, rtol=0, atol=0)
    with torch.no_grad():
        (out,) = enc(x)
    assert out.shape == (1, 1024, 8, 12)
    diff = rel_diff(out, expected)
    print(f"timm ViT-L/14-336 at {size}: relative max difference {diff:.3g}")
    assert diff <= TOL


def test_hf_clip_vision_model_directory_matches_hidden_states_minus_two(tmp_path):
    from transformers import CLIPVisionModel

    torch.manual_seed(0)
    hf = CLIPVisionModel(_hf_vit_l_336_config()).eval()
    hf.save_pretrained(tmp_path / "clip-vit-large-patch14-336")
    x = _image((336, 336))
    with torch.no_grad():
        hidden = hf(pixel_values=x, output_hidden_states=True).hidden_states[-2][:, 1:]  # LLaVA: layer -2, patches
    expected = hidden.reshape(1, 24, 24, 1024).permute(0, 3, 1, 2)
    _free(hf, hidden)
    enc = ViTCLIPEncoder(VIT, weights=str(tmp_path / "clip-vit-large-patch14-336")).eval()
    assert type(enc.model.blocks[0].mlp.act).__name__ == "QuickGELU"  # from config.json's hidden_act
    with torch.no_grad():
        (out,) = enc(x)
    diff = rel_diff(out, expected)
    print(f"Hugging Face CLIPVisionModel ViT-L/14-336 relative max difference: {diff:.3g}")
    assert diff <= TOL


def _tiny_vit_kwargs():
    return {"embed_dim": 64, "depth": 3, "num_heads": 4, "mlp_ratio": 2.0}


def test_hf_clip_model_directory_reads_its_vision_tower_only(tmp_path):
    """A whole CLIPModel (`vision_model.*` next to the text tower), at a tiny size of the same design."""
    from transformers import CLIPConfig, CLIPModel

    vision = _hf_vit_l_336_config(
        hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, image_size=56
    )
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(vision_config=vision.to_dict(), text_config=text, projection_dim=32)).eval()
    clip.save_pretrained(tmp_path)
    # openai/clip-vit-large-patch14-336 ships pytorch_model.bin, the torch.save'd state dict transformers 4 wrote
    # (transformers 5 writes safetensors only): keep the same tensors in that form.
    torch.save(load_file(str(tmp_path / "model.safetensors")), tmp_path / "pytorch_model.bin")
    (tmp_path / "model.safetensors").unlink()
    assert "vision_config" in json.loads((tmp_path / "config.json").read_text())
    x = _image((56, 56))
    with torch.no_grad():
        hidden = clip.vision_model(pixel_values=x, output_hidden_states=True).hidden_states[-2][:, 1:]
    expected = hidden.reshape(1, 4, 4, 64).permute(0, 3, 1, 2)
    enc = ViTCLIPEncoder(VIT, weights=str(tmp_path), input_size=(56, 56), model_kwargs=_tiny_vit_kwargs()).eval()
    with torch.no_grad():
        (out,) = enc(x)
    assert rel_diff(out, expected) <= TOL


def test_weights_without_pretrained_load(tmp_path):
    torch.manual_seed(0)
    ref = timm.create_model("test_convnext", pretrained=False)
    torch.save(ref.state_dict(), tmp_path / "pytorch_model.bin")
    enc = ConvNeXtCLIPEncoder("test_convnext", weights=str(tmp_path / "pytorch_model.bin"), input_size=(64, 64))
    assert enc.weights_loaded
    torch.testing.assert_close(enc.model.stem_0.weight, ref.stem[0].weight, rtol=0, atol=0)
    torch.testing.assert_close(enc.model.stages_3.blocks[1].mlp.fc2.weight, ref.stages[3].blocks[1].mlp.fc2.weight)
    random = ConvNeXtCLIPEncoder("test_convnext", input_size=(64, 64))
    assert not random.weights_loaded

    vit = timm.create_model("test_vit", pretrained=False)
    save_file(vit.state_dict(), str(tmp_path / "vit.safetensors"))
    enc = ViTCLIPEncoder("test_vit", weights=str(tmp_path / "vit.safetensors"), input_size=(160, 160))
    assert enc.weights_loaded
    torch.testing.assert_close(enc.model.blocks[0].attn.qkv.weight, vit.blocks[0].attn.qkv.weight, rtol=0, atol=0)


def test_a_file_of_another_layout_or_architecture_is_refused_with_the_expected_layout(tmp_path):
    save_file(timm.create_model("test_vit").state_dict(), str(tmp_path / "vit.safetensors"))
    expected = r"expected the timm layout.*missing \(stem_0\.weight.*unexpected \((blocks|cls_token)"
    with pytest.raises(WeightsLayoutError, match=expected):
        ConvNeXtCLIPEncoder("test_convnext", weights=str(tmp_path / "vit.safetensors"), input_size=(64, 64))

    with pytest.raises(WeightsLayoutError, match=r"of another shape \(patch_embed\.proj\.weight \(file"):
        ViTCLIPEncoder("test_vit", weights=str(tmp_path / "vit.safetensors"), model_kwargs={"patch_size": 8})

    from transformers import CLIPVisionModel

    hf_dir = tmp_path / "hf"
    CLIPVisionModel(
        _hf_vit_l_336_config(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, image_size=56
        )
    ).save_pretrained(hf_dir)
    with pytest.raises(WeightsLayoutError, match=r"reads the timm layout .* or the OpenCLIP layout.*Hugging Face"):
        ConvNeXtCLIPEncoder("test_convnext", weights=str(hf_dir), input_size=(64, 64))

    open_clip_like = {f"visual.trunk.{k}": v for k, v in timm.create_model("test_convnext").state_dict().items()}
    torch.save(open_clip_like, tmp_path / "open_clip_pytorch_model.bin")
    with pytest.raises(WeightsLayoutError, match=r"reads the timm layout .* or the Hugging Face CLIP layout.*OpenCLIP"):
        ViTCLIPEncoder("test_vit", weights=str(tmp_path / "open_clip_pytorch_model.bin"))


def test_an_openai_clip_file_is_named_as_such(tmp_path):
    openai = {"visual.class_embedding": torch.zeros(64), "visual.transformer.resblocks.0.ln_1.weight": torch.ones(64)}
    save_file(openai, str(tmp_path / "openai.safetensors"))
    with pytest.raises(WeightsLayoutError, match=r"Hugging Face CLIP layout .*is in the OpenAI CLIP layout"):
        ViTCLIPEncoder("test_vit", weights=str(tmp_path / "openai.safetensors"), input_size=(64, 64))
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(ValueError, match="neither a safetensors file nor a torch.save file"):
        ViTCLIPEncoder("test_vit", weights=str(tmp_path / "notes.txt"), input_size=(64, 64))


class _Opaque:
    """Any class: a pickle of it can only be rebuilt by running code."""


def test_a_file_that_needs_pickle_is_refused(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    torch.save({"state_dict": timm.create_model("test_convnext").state_dict(), "extra": _Opaque()}, path)
    with pytest.raises(UnsafeWeightsError, match=r"refusing to read .*unrestricted pickle.*_Opaque"):
        ConvNeXtCLIPEncoder("test_convnext", weights=str(path), input_size=(64, 64))


def test_a_training_checkpoint_wrapping_the_state_dict_loads(tmp_path):
    """OpenCLIP's training checkpoints: {"epoch", "name", "state_dict": {"module.visual.trunk...": ...}}."""
    trunk = timm.create_model("test_convnext")
    state = {f"module.visual.trunk.{k}": v for k, v in trunk.state_dict().items()}
    torch.save({"epoch": 3, "name": "run", "state_dict": state}, tmp_path / "epoch_3.pt")
    enc = ConvNeXtCLIPEncoder("test_convnext", weights=str(tmp_path / "epoch_3.pt"), input_size=(64, 64))
    torch.testing.assert_close(enc.model.stem_0.weight, trunk.stem[0].weight, rtol=0, atol=0)
