import numpy as np
import pytest
import torch

from rsvlm_zoo.data.processor import IGNORE_INDEX, InputSpec, RegionProcessor, SkipSample
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample, Turn
from rsvlm_zoo.tokens import build_tiny_tokenizer


def spec(size=(64, 96), tokens=4, kind="mask", in_image=False) -> InputSpec:
    return InputSpec(build_tiny_tokenizer(), size, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), tokens, kind, in_image)


def sample(h=120, w=80, regions=None, text="<image>\nWhat is region1<mask><pos>?", answer="a red car"):
    if regions is None:
        m = np.zeros((h, w), bool)
        m[30:50, 10:30] = True
        regions = [Region(mask=m)]
    return Sample(
        image="mem",
        width=w,
        height=h,
        regions=regions,
        conversation=[Turn("human", text), Turn("gpt", answer)],
        sample_id="s0",
        source="test.json",
    )


@pytest.mark.parametrize("policy", ["squash", "pad"])
def test_painted_mask_pixels_stay_under_the_transformed_mask(policy):
    h, w = 120, 80
    rng = np.random.default_rng(0)
    image = rng.integers(0, 100, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    mask[30:70, 20:50] = True
    image[mask] = 255  # paint the region white
    proc = RegionProcessor(spec(), image_policy=policy)
    out = proc(sample(h, w, [Region(mask=mask)]), image)
    pix = out["pixel_values"] * 0.25 + 0.5  # un-normalise
    m = out["masks"][0]
    inside = pix[:, m > 0.99].mean()
    outside = pix[:, m == 0].mean()
    assert inside > 0.95 and outside < 0.5, (inside, outside)


def test_boxes_follow_the_image_transform():
    h, w = 100, 200
    image = np.zeros((h, w, 3), np.uint8)
    image[20:40, 150:190] = 255
    proc = RegionProcessor(spec(size=(64, 64), kind="box", in_image=True), image_policy="pad")
    out = proc(sample(h, w, [Region(box=(150, 20, 190, 40))], text="<image>\nDescribe."), image)
    x1, y1, x2, y2 = out["boxes"][0].round().long().tolist()
    pix = out["pixel_values"] * 0.25 + 0.5
    assert pix[:, y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].mean() > 0.95  # inside, away from the antialiased edge
    assert pix[:, : y1 - 1].mean() < 0.6


def test_labels_cover_only_answers_and_image_expands():
    proc = RegionProcessor(spec(tokens=5))
    out = proc(sample(), np.zeros((120, 80, 3), np.uint8))
    ids, labels = out["input_ids"], out["labels"]
    assert (ids == proc.image_id).sum() == 5 and (ids == proc.mask_id).sum() == 1
    tok = proc.spec.tokenizer
    assert tok.decode(ids[labels != IGNORE_INDEX], skip_special_tokens=True).strip() == "a red car"
    assert labels[-1] == tok.eos_token_id


def test_truncation_drops_whole_turns_never_placeholders():
    turns = [
        Turn("human", "<image>\nWhat is region1<mask><pos>?"),
        Turn("gpt", "a red car"),
        Turn("human", "And region2<mask><pos>?"),
        Turn("gpt", "a blue car"),
    ]
    m = np.zeros((120, 80), bool)
    m[:10, :10] = True
    s = Sample(image="mem", width=80, height=120, regions=[Region(mask=m), Region(mask=m)], conversation=turns)
    full = RegionProcessor(spec())(s, np.zeros((120, 80, 3), np.uint8))
    n = len(full["input_ids"])
    out = RegionProcessor(spec(), max_length=n - 3)(s, np.zeros((120, 80, 3), np.uint8))
    assert out["num_regions"] == 1 and out["masks"].shape[0] == 1
    assert (out["input_ids"] == RegionProcessor(spec()).mask_id).sum() == 1
    assert out["labels"][-1] != IGNORE_INDEX
    with pytest.raises(SkipSample, match="max_length"):
        RegionProcessor(spec(), max_length=8)(s, np.zeros((120, 80, 3), np.uint8))


def test_region_count_mismatch_names_record_and_counts():
    with pytest.raises(
        DataFormatError, match=r"record 's0' in test.json: text has 2 <mask><pos> placeholders .* 1 regions"
    ):
        RegionProcessor(spec())(
            sample(text="<image> region1<mask><pos> region2<mask><pos>"), np.zeros((120, 80, 3), np.uint8)
        )


def test_empty_mask_and_wrong_size_are_clear_errors():
    proc = RegionProcessor(spec())
    empty = Region(mask=np.zeros((120, 80), bool))
    with pytest.raises(DataFormatError, match="empty"):
        proc(sample(regions=[empty]), np.zeros((120, 80, 3), np.uint8))
    with pytest.raises(DataFormatError, match="mask is 10x10 but image is 80x120"):
        proc(sample(regions=[Region(mask=np.ones((10, 10), bool))]), np.zeros((120, 80, 3), np.uint8))
    with pytest.raises(DataFormatError, match="image is 80x120 but the annotation says 90x120"):
        bad = sample()
        bad.width = 90
        proc(bad, np.zeros((120, 80, 3), np.uint8))


def test_no_answer_turn_is_a_clear_error():
    s = sample()
    s.conversation = s.conversation[:1]
    with pytest.raises(DataFormatError, match="no answer turn"):
        RegionProcessor(spec())(s, np.zeros((120, 80, 3), np.uint8))


def test_tiny_object_survives_downscaling():
    h = w = 1000
    m = np.zeros((h, w), bool)
    m[500:503, 500:503] = True  # 3x3 px object, 15x smaller image
    out = RegionProcessor(spec(size=(64, 64)))(sample(h, w, [Region(mask=m)]), np.zeros((h, w, 3), np.uint8))
    assert out["masks"][0].sum() > 0
    # Non-integer factors pool over overlapping windows, so the mass is kept approximately, positivity exactly.
    assert torch.isclose(out["masks"][0].sum(), torch.tensor(9 * (64 / 1000) ** 2), rtol=0.1)
