"""Grounding metrics against hand-computed cases; box text scored through the data layer's codec."""

import pytest
import torch

from rsvlm_zoo.data.box_codec import BoxCodec
from rsvlm_zoo.evaluation.answer_metrics import build_answer_metrics
from rsvlm_zoo.metrics import GroundingAccuracy


def scores(metric):
    return {k: float(v) for k, v in metric.compute().items()}


def test_hand_computed_ious_thresholds_and_cumulative_iou():
    m = GroundingAccuracy()
    preds = [(0, 0, 10, 10), (0, 0, 10, 10), (20, 20, 30, 30), None]
    target = [(0, 0, 10, 10), (5, 0, 15, 10), (0, 0, 10, 10), (0, 0, 4, 5)]
    m.update(preds, target)
    # IoUs: 1, 50/150 = 1/3, 0 (disjoint), 0 (no box: a miss)
    got = scores(m)
    assert got["miou"] == pytest.approx((1 + 1 / 3) / 4)
    assert got["acc@0.25"] == 0.5 and got["acc@0.5"] == 0.25 and got["acc@0.75"] == 0.25
    # cIoU: intersections 100 + 50 + 0 + 0 over unions 100 + 150 + 200 + 20 (a miss adds its reference's area)
    assert got["ciou"] == pytest.approx(150 / 470)
    assert got["unparsed"] == 1


def test_two_processes_equal_one_and_empty_is_zero():
    preds = [(0, 0, 10, 10), None, (1, 1, 5, 5), (0, 0, 2, 8)]
    target = [(0, 0, 8, 10), (0, 0, 1, 1), (0, 0, 5, 5), (0, 0, 2, 4)]
    whole, a, b = GroundingAccuracy(), GroundingAccuracy(), GroundingAccuracy()
    whole.update(preds, target)
    a.update(preds[:1], target[:1])
    b.update(preds[1:], target[1:])
    a.merge_state(b)  # what the DDP gather does with concatenated and summed states
    assert scores(a) == pytest.approx(scores(whole))
    assert all(v == 0 for v in scores(GroundingAccuracy()).values())


def test_bad_boxes_and_lengths_are_refused():
    with pytest.raises(ValueError, match="2 predicted boxes but 1"):
        GroundingAccuracy().update([None, None], [(0, 0, 1, 1)])
    with pytest.raises(ValueError, match="four finite numbers"):
        GroundingAccuracy().update([(0, 0, float("nan"), 1)], [(0, 0, 1, 1)])


def test_text_grounding_scores_pixel_iou_whatever_the_image_aspect():
    """The normalised-coordinate trap: boxes written on GeoChat's 0-100 grid score the IoU of the pixel boxes."""
    codec = BoxCodec("grid100")
    width, height = 800, 200  # a wide scene: x and y grids have different pixel sizes
    pred_px, true_px = (96, 40, 504, 160), (200, 40, 600, 160)  # on the grid: 8 px in x, 2 px in y
    metric = build_answer_metrics(["grounding"])["grounding"]
    metric.update(
        [f"it is at {codec.encode(pred_px, width, height)}", "no idea"],
        [[codec.encode(true_px, width, height)], [codec.encode(true_px, width, height)]],
    )
    direct = GroundingAccuracy()
    direct.update([pred_px, None], [true_px, true_px])
    assert scores(metric) == pytest.approx(scores(direct))
    assert scores(metric)["unparsed"] == 1 and scores(metric)["miou"] == pytest.approx(304 / 504 / 2)


def test_text_grounding_refuses_a_reference_without_a_box():
    metric = build_answer_metrics(["grounding"])["grounding"]
    with pytest.raises(ValueError, match="holds no box"):
        metric.update(["{<1><2><3><4>}"], [["a plane"]])


def test_doctest_example_holds():
    m = GroundingAccuracy()
    m.update([(0, 0, 10, 10), None], [(0, 0, 10, 20), (5, 5, 9, 9)])
    assert float(m.compute()["ciou"]) == pytest.approx(100 / 216)
    assert torch.is_tensor(m.compute()["miou"])
