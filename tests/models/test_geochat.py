import numpy as np
import pytest
import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.data.box_codec import BoxCodec
from rsvlm_zoo.data.collate import RegionCollator
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample, Turn
from rsvlm_zoo.data.synthetic import SyntheticRegionScenes, mask_box
from rsvlm_zoo.metrics.grounding import box_iou_pairs
from rsvlm_zoo.models import GeoChat
from rsvlm_zoo.models.geochat import TextRegions, first_box
from rsvlm_zoo.tokens import build_tiny_tokenizer
from rsvlm_zoo.weights.pretrained import PRETRAINED_CFGS


@pytest.fixture(scope="module")
def tiny_geochat():
    torch.manual_seed(0)
    return build_model("geochat_tiny")


CLIP_504 = "vit_large_patch14_clip_504.geochat"


def scene_sample(width=160, height=96):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), bool)
    mask[20:41, 33:77] = True
    regions = [Region(box=(5.0, 7.0, 30.0, 50.0)), Region(mask=mask)]
    conversation = [
        Turn("human", "<image>\n[identify] What is at <mask><pos> and next to <mask><pos>?"),
        Turn("gpt", "a car"),
    ]
    sample = Sample(image=image, width=width, height=height, regions=regions, conversation=conversation)
    sample.region_refs = [1, 0]
    return sample


def test_build_has_no_region_module_and_the_llava_template(tiny_geochat):
    assert isinstance(tiny_geochat, GeoChat) and isinstance(tiny_geochat.extractor, TextRegions)
    assert tiny_geochat.input_spec().region_kind == "text" and not tiny_geochat.input_spec().regions_in_image
    assert tiny_geochat.template == "llava_v1"
    assert tiny_geochat.num_parameters()["extractor"] == 0
    trained = {k for k, v in tiny_geochat.num_parameters(trainable_only=True).items() if v}
    assert trained == {"projector", "llm"}  # stage 2 without LoRA: the random LLM learns too
    assert build_model("geochat_tiny", stage=1).num_parameters(trainable_only=True)["llm"] == 0


def test_box_words_are_added_after_every_existing_token(tiny_geochat):
    tok, base = tiny_geochat.llm.tokenizer, build_tiny_tokenizer()
    assert tok.get_vocab().items() >= base.get_vocab().items()  # no existing id moved
    assert tiny_geochat.llm.model.get_input_embeddings().num_embeddings == len(tok)
    ids = tok("[refer] where is {<12><30><45><60>|<90>}", add_special_tokens=False).input_ids
    assert tok.unk_token_id not in ids
    assert "refer" not in tok.convert_ids_to_tokens(tok("reference", add_special_tokens=False).input_ids)


def test_processor_writes_each_region_as_grid100_text(tiny_geochat):
    sample = scene_sample()
    item = tiny_geochat.processor(sample, sample.image)
    assert item["num_regions"] == 0 and item["boxes"].shape == (0, 4) and "masks" not in item
    tok = tiny_geochat.llm.tokenizer
    ids = item["input_ids"]
    assert not ((ids == tiny_geochat.mask_id) | (ids == tiny_geochat.pos_id)).any()
    text = tok.decode(ids, skip_special_tokens=True)
    found = BoxCodec("grid100").decode(text, sample.width, sample.height)
    assert len(found) == 2
    for (box, angle), ref in zip(found, sample.region_refs, strict=True):  # in reference order
        truth = sample.regions[ref].to_box()
        assert angle is None
        assert np.allclose(box, truth, atol=0.5 * max(sample.width, sample.height) / 100 + 1e-6), (box, truth)
    # The answer is still what is supervised.
    labels = item["labels"][item["labels"] != -100]
    assert tok.decode(labels, skip_special_tokens=True) == "a car"


def test_text_regions_keep_box_and_mask_models_unchanged(tiny_geochat):
    sample = scene_sample()
    box_model = build_model("mgimm_tiny")
    item = box_model.processor(sample, sample.image)
    assert item["num_regions"] == 2 and item["boxes"].shape == (2, 4)
    # Unpaired placeholders are refused for text regions too.
    bad = scene_sample()
    bad.conversation = [Turn("human", "<image>\n<mask> then <pos>"), Turn("gpt", "x")]
    bad.region_refs = [0]
    with pytest.raises(DataFormatError):
        tiny_geochat.processor(bad, bad.image)


def test_refer_task_answers_with_the_box_as_text():
    scenes = SyntheticRegionScenes(20, seed=0, task="refer")
    assert len(scenes) == len(SyntheticRegionScenes(20, seed=0, task="box_attributes"))
    for i in range(len(scenes)):
        s = scenes[i]
        question, answer = s.conversation[0].text, s.conversation[1].text
        assert question.startswith("<image>\n[refer] Where is the ") and s.meta["answer"] == answer
        ((box, _),) = BoxCodec("grid100").decode(answer, s.width, s.height)
        iou = box_iou_pairs(torch.tensor([box]), torch.tensor([s.regions[0].to_box()]))[2]
        assert float(iou) > 0.8
    # Phrases are unique within a scene.
    by_scene: dict[str, list[str]] = {}
    for i in range(len(scenes)):
        by_scene.setdefault(scenes[i].sample_id.split(":")[0], []).append(scenes[i].meta["phrase"])
    assert all(len(set(p)) == len(p) for p in by_scene.values())
    assert mask_box  # the answer box is the mask's tight box


def test_a_training_step_lowers_the_loss(tiny_geochat):
    model = build_model("geochat_tiny")
    scenes = SyntheticRegionScenes(4, seed=0, task="refer")
    proc = model.processor
    batch = RegionCollator(model.llm.tokenizer.pad_token_id)([proc(s, s.image) for s in (scenes[i] for i in range(8))])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    losses = []
    for _ in range(5):
        loss = model(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_describe_identify_and_refer(tiny_geochat):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (96, 160, 3), dtype=np.uint8), rng.integers(0, 255, (200, 120, 3), dtype=np.uint8)]
    boxes_per_image = [[(5, 5, 40, 30), (100, 50, 150, 90)], [(10, 10, 60, 100)]]
    answers = tiny_geochat.describe(images, boxes_per_image, max_new_tokens=3)
    assert [len(a) for a in answers] == [2, 1] and all(isinstance(t, str) for a in answers for t in a)
    boxes = tiny_geochat.describe(images, [["red car"], ["white pool", "blue tank"]], task="refer", max_new_tokens=3)
    assert [len(b) for b in boxes] == [1, 2]
    assert all(b is None or len(b) == 4 for bs in boxes for b in bs)
    with pytest.raises(ValueError, match="task"):
        tiny_geochat.describe(images, None, task="grounding")
    with pytest.raises(ValueError, match="image 0, box 0"):
        tiny_geochat.describe(images[:1], [[(30, 5, 10, 30)]])


def test_answers_parse_back_to_pixel_boxes():
    assert first_box("{< 10 >< 20 >< 50 >< 60 >}", 200, 100) == (20.0, 20.0, 100.0, 60.0)
    assert first_box("a car", 200, 100) is None and first_box("{<10><20><500><60>}", 200, 100) is None


def test_full_size_defaults():
    with torch.device("meta"):
        model = build_model("geochat_7b", llm={"tokenizer": "builtin"})  # no local Vicuna tokenizer here
    assert model.stage == 2 and model.lora.r == 64 and model.lora.alpha == 16
    assert model.encoder.input_size == (504, 504) and model.encoder.num_image_tokens == 36 * 36
    assert model.encoder.channels == [1024] and model.encoder.mean == PRETRAINED_CFGS[CLIP_504].mean
    trainable = [n for n, p in model.llm.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_the_504_px_entry_reads_the_336_px_clip_weights(tmp_path, monkeypatch):
    """GeoChat's encoder is a pretrained configuration: CLIP ViT-L/14-336's cache entry, run at 504 px."""
    from rsvlm_zoo.weights.files import MissingWeightsError
    from rsvlm_zoo.weights.pretrained import encoder_architecture, encoder_defaults

    assert encoder_architecture(CLIP_504) == "vit_large_patch14_clip_336.openai"
    assert encoder_defaults(CLIP_504)["input_size"] == (504, 504)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="timm/vit_large_patch14_clip_336.openai"):
        build_model("geochat_7b", pretrained=True)


def test_round_trips_through_an_exported_directory(tiny_geochat, tmp_path):
    from rsvlm_zoo import from_pretrained
    from rsvlm_zoo.weights.export import export_model

    out = export_model(tiny_geochat.eval(), tmp_path / "export")
    torch.manual_seed(123)  # a rebuild draws other random weights; the export overwrites all of them
    again = from_pretrained(str(out))
    assert isinstance(again, GeoChat) and len(again.llm.tokenizer) == len(tiny_geochat.llm.tokenizer)
    sa, sb = tiny_geochat.state_dict(), again.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_rsvlm_describe_gives_geochat_its_regions_as_boxes(tiny_geochat):
    from rsvlm_zoo.cli.describe import describe_regions, region_kind
    from rsvlm_zoo.data.schema import Region

    image = np.zeros((60, 80, 3), np.uint8)
    mask = np.zeros((60, 80), bool)
    mask[10:30, 20:50] = True
    assert region_kind(tiny_geochat) == "text"
    answers = describe_regions(tiny_geochat, image, [Region(mask=mask), Region(box=(0, 0, 40, 40))], max_new_tokens=2)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
