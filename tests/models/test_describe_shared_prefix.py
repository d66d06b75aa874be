"""`describe()` with region tokens once per region and a shared KV-cached prefix equals the whole-prompt path.

Also the region-list policy of Aquila-plus (`region_list_policy`) for scenes whose region list outgrows the
context, with the real DOTA scene described end to end (from the shared sample data, skipped without it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.data.schema import Region
from rsvlm_zoo.data.synthetic import generate_scene
from rsvlm_zoo.models import aquila_plus, shared_prefix
from rsvlm_zoo.models.region_lists import parse_region_list_policy, region_list_questions
from rsvlm_zoo.models.shared_prefix import Question, prompt_ids
from rsvlm_zoo.weights.model_config import model_config
from tests.unbatched import recorded_generation_batches


def _scene(count: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    image, objects = generate_scene(seed, side=256, min_objects=count, max_objects=count)
    return image, [o.mask for o in objects]


@pytest.fixture(scope="module")
def aquila():
    torch.manual_seed(0)
    return build_model("aquila_plus_tiny").eval()


@pytest.fixture(scope="module")
def mgimm():
    torch.manual_seed(0)
    return build_model("mgimm_tiny").eval()


def test_shared_prefix_matches_whole_prompts_answers_and_logits(aquila, monkeypatch):
    image, masks = _scene(6)
    other, other_masks = _scene(4, seed=3)
    images, regions = [image, other], [masks, other_masks]
    with recorded_generation_batches(aquila) as recorded:
        old = aquila.describe(images, regions, max_new_tokens=6, reuse_prefix=False)
    steps: list[torch.Tensor] = []
    original = shared_prefix.greedy_from_prefix

    def recording(*args, **kwargs):
        scores: list[torch.Tensor] = []
        out = original(*args, **kwargs, scores=scores)
        steps.append(scores[0])
        return out

    monkeypatch.setattr(shared_prefix, "greedy_from_prefix", recording)
    new = aquila.describe(images, regions, max_new_tokens=6)
    assert new == old
    assert [len(a) for a in new] == [6, 4]
    # First-step logits: the whole left-padded prompts vs the cached prefix + each question's own tokens.
    batch = recorded[0]
    with torch.no_grad():
        whole = aquila.llm.model(inputs_embeds=aquila.inputs_embeds(batch), attention_mask=batch["attention_mask"])
    reference = whole.logits[:, -1]
    shared = torch.cat(steps)
    assert shared.shape == reference.shape
    torch.testing.assert_close(shared, reference, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(reference[0], reference[1], atol=1e-3)  # the logits do depend on the region


def test_shared_prefix_matches_for_every_policy(aquila):
    image, masks = _scene(7)
    for policy in ("chunks:3", "nearest:2", "asked"):
        old = aquila.describe([image], [masks], max_new_tokens=5, region_list_policy=policy, reuse_prefix=False)
        new = aquila.describe([image], [masks], max_new_tokens=5, region_list_policy=policy)
        assert new == old, policy


def test_prefix_is_computed_once_and_regions_extracted_once(aquila, monkeypatch):
    image, masks = _scene(8)
    seen: list[int] = []
    original = aquila.extractor.forward

    def counting(features, regions, **kwargs):
        seen.append(regions.masks.shape[0])
        return original(features, regions, **kwargs)

    monkeypatch.setattr(aquila.extractor, "forward", counting)
    aquila.describe([image], [masks], max_new_tokens=2)
    assert seen == [8]  # every mask once (the whole-prompt path extracts 8 x 9)


def test_mgimm_shared_prefix_matches_whole_prompts(mgimm):
    image, masks = _scene(6)
    boxes = [Region(mask=m).to_box() for m in masks]
    for task in ("attributes", "description"):
        old = mgimm.describe([image, image], [boxes, boxes[:2]], task=task, max_new_tokens=5, reuse_prefix=False)
        assert mgimm.describe([image, image], [boxes, boxes[:2]], task=task, max_new_tokens=5, reuse_prefix=True) == old


def test_prompt_ids_equal_the_processors_tokenisation(aquila):
    from rsvlm_zoo.data.processor import RegionProcessor
    from rsvlm_zoo.data.schema import Sample, Turn

    image, masks = _scene(3)
    processor = RegionProcessor(aquila.input_spec(), max_length=1 << 30)
    questions = region_list_questions("all", "What is {region}?", masks, 0, None, None)
    for q, ids in zip(questions, prompt_ids(processor, questions), strict=True):
        regs = [Region(mask=m) for m in masks]
        sample = Sample(image=image, width=256, height=256, regions=regs, conversation=[Turn("human", q.text)])
        assert processor.tokenize(sample, len(q.refs), generation=True)[0] == ids


def test_policy_parsing_and_config_round_trip():
    assert parse_region_list_policy("chunks:64") == ("chunks", 64)
    assert parse_region_list_policy("auto") == ("auto", 0)
    for bad in ("chunks", "nearest:0", "everything", "all:3"):
        with pytest.raises(ValueError, match="region_list_policy"):
            parse_region_list_policy(bad)
    with pytest.raises(ValueError, match="region_list_policy"):
        build_model("aquila_plus_tiny", region_list_policy="some")
    model = build_model("aquila_plus_tiny", region_list_policy="nearest:16")
    assert model_config(model)["init_args"]["region_list_policy"] == "nearest:16"
    assert build_model("aquila_plus_tiny").region_list_policy == "auto"


def test_policies_beyond_the_context(aquila, monkeypatch):
    image, masks = _scene(12)
    monkeypatch.setattr(aquila_plus, "context_limit", lambda model: 150)  # a 12-region prompt needs ~180
    with pytest.raises(ValueError, match="context"):
        aquila.describe([image], [masks], max_new_tokens=4, region_list_policy="all")
    recorded: list[list[Question]] = []
    original = aquila_plus.answer_questions

    def recording(model, images, regions, questions, *args):
        recorded.append(questions)
        return original(model, images, regions, questions, *args)

    monkeypatch.setattr(aquila_plus, "answer_questions", recording)
    answers = aquila.describe([image], [masks], max_new_tokens=4)  # auto: even chunks that fit
    assert len(answers[0]) == 12
    groups = {q.group for q in recorded[0]}
    assert len(groups) > 1
    sizes = [sum(q.group == g for q in recorded[0]) for g in groups]
    assert max(sizes) - min(sizes) <= 1
    assert [q.refs[-1] for q in recorded[0]] == list(range(12))  # each question asks its own region


def dota_mosaic(root: Path, tiles: int = 3, scale: int = 3) -> tuple[np.ndarray, list[np.ndarray]]:
    """The DOTA P1888 scene shrunk by `scale` and tiled `tiles` x `tiles`, with every object polygon as a mask."""
    from PIL import Image

    from rsvlm_zoo.data.readers.boxes import read_dota

    (sample,) = read_dota(root / "labelTxt")
    full = Image.open(root / "images" / "P1888.png").convert("RGB")
    small = np.asarray(full.resize((full.width // scale, full.height // scale)))
    h, w = small.shape[:2]
    image = np.tile(small, (tiles, tiles, 1))
    masks = []
    for ty in range(tiles):
        for tx in range(tiles):
            for region in sample.regions:
                poly = np.asarray(region.polygons[0], dtype=float) / scale + [tx * w, ty * h]
                mask = Region(polygons=[poly]).to_mask(h * tiles, w * tiles)
                if mask.any():
                    masks.append(mask)
    return image, masks


def test_hundreds_of_regions_on_the_real_dota_scene(shared_data, aquila):
    image, masks = dota_mosaic(shared_data / "regions" / "dota")
    masks = masks[:536]
    assert len(masks) == 536
    answers = aquila.describe([image], [masks], max_new_tokens=4)  # auto: chunks that fit 1,024 positions
    assert len(answers[0]) == 536
    assert all(isinstance(a, str) for a in answers[0])
    with pytest.raises(ValueError, match="context"):
        aquila.describe([image], [masks], max_new_tokens=4, region_list_policy="all")
