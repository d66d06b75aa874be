"""MGIMM's description prompt under `description_boxes` when hundreds of boxes outgrow the LLM's context."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.models.mgimm import parse_description_boxes

SIDE, COUNT = 256, 600


@pytest.fixture(scope="module")
def crowded():
    """A seeded tiny MGIMM and a scene with 600 small boxes (2 tokens each: far past 1,024 positions)."""
    torch.manual_seed(0)
    model = build_model("mgimm_tiny").eval()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    boxes = []
    for _ in range(COUNT):
        x, y = rng.integers(0, SIDE - 16, 2)
        w, h = rng.integers(4, 16, 2)
        boxes.append((float(x), float(y), float(x + w), float(y + h)))
    return model, image, boxes


def largest(boxes, k):
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    return sorted(sorted(range(len(boxes)), key=lambda i: -areas[i])[:k])


def test_all_refuses_a_prompt_past_the_context_naming_the_setting(crowded):
    model, image, boxes = crowded
    with pytest.raises(ValueError, match=r"description_boxes='all': 600 boxes need more than the \d+ prompt tokens"):
        model.describe([image], [boxes], max_new_tokens=4, description_boxes="all")


def test_largest_k_describes_exactly_the_k_largest_boxes(crowded):
    model, image, boxes = crowded
    chosen = model.describe([image], [boxes], max_new_tokens=4, description_boxes="largest:3")
    alone = model.describe([image], [[boxes[i] for i in largest(boxes, 3)]], max_new_tokens=4, description_boxes="all")
    assert chosen == alone


def test_auto_keeps_the_largest_boxes_that_fit_and_says_how_many(crowded, caplog):
    model, image, boxes = crowded
    with caplog.at_level(logging.WARNING, logger="rsvlm_zoo.models.mgimm"):
        auto = model.describe([image], [boxes], max_new_tokens=4)
    (message,) = [r.getMessage() for r in caplog.records]
    kept = int(message.split("the description uses the ")[1].split()[0])
    assert 300 < kept < COUNT  # 2 tokens per box after 64 global tokens, in 1,024 positions less the answer
    same = model.describe([image], [[boxes[i] for i in largest(boxes, kept)]], max_new_tokens=4)
    assert auto == same
    with pytest.raises(ValueError, match="need more than"):  # one more box would not fit
        one_more = [boxes[i] for i in largest(boxes, kept + 1)]
        model.describe([image], [one_more], max_new_tokens=4, description_boxes="all")


@pytest.mark.parametrize("bad", ["most:3", "largest:0", "largest", "all:2"])
def test_unknown_policies_are_refused_when_the_model_is_built(bad):
    with pytest.raises(ValueError, match="description_boxes must be one of auto, all, largest:K"):
        parse_description_boxes(bad)
    with pytest.raises(ValueError, match="description_boxes must be one of"):
        build_model("mgimm_tiny", description_boxes=bad)
