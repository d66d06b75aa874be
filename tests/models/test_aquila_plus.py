import numpy as np
import pytest
import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.data.collate import RegionCollator
from rsvlm_zoo.data.processor import RegionProcessor
from rsvlm_zoo.data.synthetic import SyntheticRegionScenes
from rsvlm_zoo.models.splice import PlaceholderCountError


def train_batch(model, n=3, seed=0):
    proc = RegionProcessor(model.input_spec(), max_length=512)
    scenes = SyntheticRegionScenes(n, seed=seed)
    items = [proc(s, s.image) for s in (scenes[i] for i in range(n))]
    return RegionCollator(model.llm.tokenizer.pad_token_id)(items)


def test_loss_is_finite_and_backpropagates_to_trainable_blocks(tiny_aquila):
    batch = train_batch(tiny_aquila)
    loss = tiny_aquila(batch)
    assert torch.isfinite(loss)
    loss.backward()
    assert tiny_aquila.extractor.mask_proj.weight.grad is not None
    assert tiny_aquila.projector.net[0].weight.grad is not None
    assert all(p.grad is None for p in tiny_aquila.encoder.parameters())


def test_labels_ignore_prompt_image_and_region_positions(tiny_aquila):
    batch = train_batch(tiny_aquila, n=1)
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    special = (ids == tiny_aquila.image_id) | (ids == tiny_aquila.mask_id) | (ids == tiny_aquila.pos_id)
    assert special.sum() > 0 and (labels[special] == -100).all()
    supervised = tiny_aquila.llm.tokenizer.decode(ids[labels != -100])
    assert "a " in supervised and "region" not in supervised and "what" not in supervised


def test_region_token_count_mismatch_names_both_counts(tiny_aquila):
    batch = train_batch(tiny_aquila, n=2)
    batch["region_image_index"] = batch["region_image_index"][:-1]
    batch["region_masks"] = batch["region_masks"][:-1]
    with pytest.raises(
        PlaceholderCountError, match=r"sample 1 of the batch has \d+ <mask> tokens .* \d+ <mask> features"
    ):
        tiny_aquila(batch)


def test_image_token_count_mismatch_is_caught(tiny_aquila):
    batch = train_batch(tiny_aquila, n=1)
    ids = batch["input_ids"]
    first = int((ids[0] == tiny_aquila.image_id).nonzero()[0])
    ids[0, first] = tiny_aquila.llm.tokenizer.pad_token_id
    with pytest.raises(PlaceholderCountError, match="<image>"):
        tiny_aquila(batch)


@pytest.mark.parametrize(
    ("stage", "trained"), [(1, {"projector"}), (2, {"extractor"}), (3, {"extractor", "projector", "llm"})]
)
def test_stage_freezing(stage, trained):
    model = build_model("aquila_plus_tiny", stage=stage)
    counts = model.num_parameters(trainable_only=True)
    assert {k for k, v in counts.items() if v} == trained
    model.train()
    assert not model.encoder.training, "a frozen encoder stays in eval mode"
    assert model.projector.training


def test_lora_stage3_trains_only_adapters_in_the_llm():
    from rsvlm_zoo.models.lora import LoraSettings

    model = build_model("aquila_plus_tiny", lora=LoraSettings(r=4, alpha=8))
    names = [n for n, p in model.llm.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert model.num_parameters(True)["extractor"] == model.num_parameters()["extractor"]


def test_describe_batches_images_with_different_region_counts(tiny_aquila):
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 255, (90, 160, 3), dtype=np.uint8),
        rng.integers(0, 255, (300, 200, 3), dtype=np.uint8),
        rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
    ]

    def box_mask(h, w, y, x, s):
        m = np.zeros((h, w), bool)
        m[y : y + s, x : x + s] = True
        return m

    regions = [
        [box_mask(90, 160, 5, 5, 10), box_mask(90, 160, 40, 100, 3)],
        [torch.from_numpy(box_mask(300, 200, 100, 50, 60))],
        [],
    ]
    out = tiny_aquila.describe(images, regions, max_new_tokens=4)
    assert [len(x) for x in out] == [2, 1, 0]
    assert all(isinstance(a, str) for x in out for a in x)
    # Batched answers equal one-at-a-time answers (greedy decoding, padding-independent).
    single = tiny_aquila.describe(images[:1], [regions[0][1:]], max_new_tokens=4)
    assert single[0][0] == out[0][1]


def test_describe_rejects_masks_of_the_wrong_size(tiny_aquila):
    img = np.zeros((50, 60, 3), np.uint8)
    with pytest.raises(ValueError, match="image 0, region 0"):
        tiny_aquila.describe([img], [[np.ones((60, 50), bool)]])


def test_save_load_round_trip(tmp_path, tiny_aquila):
    from safetensors.torch import load_file, save_file

    batch = train_batch(tiny_aquila, n=2)
    tiny_aquila.eval()
    with torch.no_grad():
        before = tiny_aquila(batch)
    save_file({k: v.contiguous() for k, v in tiny_aquila.state_dict().items()}, tmp_path / "m.safetensors")
    torch.manual_seed(123)
    fresh = build_model("aquila_plus_tiny").eval()
    fresh.load_state_dict(load_file(tmp_path / "m.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(fresh(batch), before)


def test_describe_is_deterministic_and_keeps_the_mode_it_found():
    from rsvlm_zoo import build_model
    from rsvlm_zoo.data.synthetic import SyntheticRegionScenes

    torch.manual_seed(0)
    model = build_model("aquila_plus_tiny", lora={"r": 4, "alpha": 8, "dropout": 0.5}).train()
    with torch.no_grad():  # LoRA B starts at zero, which would hide its dropout
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 1.0)
    scene = SyntheticRegionScenes(1, seed=2)[0]
    masks = [r.to_mask(scene.height, scene.width) for r in scene.regions]
    first = model.describe([scene.image], [masks], max_new_tokens=6)
    assert model.training and model.llm.training  # the mode it found
    assert all(model.describe([scene.image], [masks], max_new_tokens=6) == first for _ in range(3))
