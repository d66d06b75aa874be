import numpy as np
import pytest
import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.data.collate import RegionCollator
from rsvlm_zoo.data.processor import RegionProcessor
from rsvlm_zoo.data.synthetic import SyntheticRegionScenes
from rsvlm_zoo.models import MGIMM


@pytest.fixture
def tiny_mgimm():
    torch.manual_seed(0)
    return build_model("mgimm_tiny")


def batch_for(model, task="description", n=3):
    proc = RegionProcessor(model.input_spec(), max_length=512)
    scenes = SyntheticRegionScenes(n, seed=0, task=task)
    return RegionCollator(model.llm.tokenizer.pad_token_id)([proc(s, s.image) for s in (scenes[i] for i in range(n))])


def test_image_placeholder_expands_to_global_then_two_tokens_per_box(tiny_mgimm):
    batch = batch_for(tiny_mgimm)
    counts = torch.bincount(batch["region_image_index"], minlength=3)
    ids = batch["input_ids"]
    n_global = tiny_mgimm.encoder.num_image_tokens
    assert n_global == 64
    for row, boxes in zip(ids, counts, strict=True):
        assert (row == tiny_mgimm.image_id).sum() == n_global
        assert (row == tiny_mgimm.mask_id).sum() == boxes == (row == tiny_mgimm.pos_id).sum()
        first = int((row == tiny_mgimm.image_id).nonzero()[0])
        span = row[first : first + n_global + 2 * int(boxes)]
        assert (span[:n_global] == tiny_mgimm.image_id).all()
        assert span[n_global::2].eq(tiny_mgimm.mask_id).all() and span[n_global + 1 :: 2].eq(tiny_mgimm.pos_id).all()
    assert torch.isfinite(tiny_mgimm(batch))


def test_region_tokens_go_through_the_shared_projector(tiny_mgimm):
    batch = batch_for(tiny_mgimm, n=1)
    seen = []
    hook = tiny_mgimm.projector.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    tiny_mgimm(batch)
    hook.remove()
    assert seen[0][-2:] == (64, 112)  # global tokens: Lite0's 8x8 stride-16 cells, 112 channels
    assert seen[1][-2:] == (2, 112)  # region tokens, same projector


@pytest.mark.parametrize(
    ("stage", "trained"), [(1, {"extractor", "projector"}), (2, {"extractor", "projector", "llm"})]
)
def test_stage_freezing(stage, trained):
    model = build_model("mgimm_tiny", stage=stage, lora=None)
    assert {k for k, v in model.num_parameters(trainable_only=True).items() if v} == trained
    model.train()
    assert not model.encoder.training


def test_stage2_defaults_lora_and_paper_learning_rates():
    with torch.device("meta"):
        model = build_model("mgimm_7b", llm={"tokenizer": "builtin"})  # no local Vicuna tokenizer here
    assert model.stage == 2 and model.lora.r == 16 and model.lora.alpha == 256
    assert model.hparams.lora["r"] == 16  # plain data in the checkpoint
    assert model.hparams.block_lr["projector"] == 2e-6 and model.hparams.block_lr["llm"] == 2e-5
    trainable = [n for n, p in model.llm.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert model.encoder.num_image_tokens == 576 and model.encoder.channels == [1024]


def test_stage2_starts_from_stage1_weights(tmp_path, tiny_mgimm):
    with torch.no_grad():
        tiny_mgimm.projector.net[0].weight.fill_(0.123)
        tiny_mgimm.extractor.corner_embed.fill_(0.456)
    torch.save({"state_dict": tiny_mgimm.state_dict()}, tmp_path / "stage1.ckpt")
    stage2 = build_model(
        "mgimm_tiny", stage=2, init_checkpoint=str(tmp_path / "stage1.ckpt"), lora={"r": 4, "alpha": 8}
    )
    assert torch.all(stage2.projector.net[0].weight == 0.123)
    assert torch.all(stage2.extractor.corner_embed == 0.456)
    with pytest.raises(FileNotFoundError, match="init_checkpoint"):
        build_model("mgimm_tiny", stage=2, init_checkpoint=str(tmp_path / "missing.ckpt"))


def test_stage2_built_without_a_stage1_block_argument_is_refused(tmp_path):
    stage1 = build_model("mgimm_tiny")  # its box module layer-normalises the image tokens
    torch.save({"state_dict": stage1.state_dict()}, tmp_path / "stage1.ckpt")
    with pytest.raises(ValueError, match=r"no place for 2 trained tensor.*extractor\.image_norm"):
        build_model(
            "mgimm_tiny",
            stage=2,
            extractor={"image_norm": False, "attention_init": "default"},
            init_checkpoint=str(tmp_path / "stage1.ckpt"),
        )


def test_zero_region_ablation_changes_only_region_tokens(tiny_mgimm):
    batch = batch_for(tiny_mgimm, n=2)
    tiny_mgimm.eval()
    with torch.no_grad():
        full = tiny_mgimm.inputs_embeds(batch)
        tiny_mgimm.zero_region_tokens = True
        ablated = tiny_mgimm.inputs_embeds(batch)
    region = (batch["input_ids"] == tiny_mgimm.mask_id) | (batch["input_ids"] == tiny_mgimm.pos_id)
    assert torch.equal(full[~region], ablated[~region]) and not torch.equal(full[region], ablated[region])


def test_describe_batched_for_descriptions_and_attributes(tiny_mgimm):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (96, 160, 3), dtype=np.uint8), rng.integers(0, 255, (200, 120, 3), dtype=np.uint8)]
    boxes = [[(5, 5, 40, 30), (100, 50, 150, 90)], [(10, 10, 60, 100)]]
    texts = tiny_mgimm.describe(images, boxes, max_new_tokens=3)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    per_box = tiny_mgimm.describe(images, boxes, max_new_tokens=3, task="attributes")
    assert [len(x) for x in per_box] == [2, 1]
    alone = tiny_mgimm.describe(images[1:], boxes[1:], max_new_tokens=3, task="attributes")
    assert alone[0] == per_box[1]
    with pytest.raises(ValueError, match="image 0, box 0"):
        tiny_mgimm.describe(images[:1], [[(30, 5, 10, 30)]])


def test_registered_as_lightning_module():
    assert isinstance(build_model("mgimm_tiny"), MGIMM)


def test_vit_encoder_takes_architecture_arguments():
    """`model_kwargs` reach timm: a patch-8 tiny ViT gives a 16x16 token map and 256 global tokens."""
    from rsvlm_zoo.models.blocks.encoders import ViTCLIPEncoder

    enc = ViTCLIPEncoder("test_vit", input_size=(128, 128), model_kwargs={"patch_size": 8})
    (fmap,) = enc(torch.zeros(2, 3, 128, 128))
    assert fmap.shape == (2, enc.image_dim, 16, 16)
    assert enc.reductions == [8] and enc.num_image_tokens == 256
