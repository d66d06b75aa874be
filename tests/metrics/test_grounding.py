"""Grounding metrics against hand-computed cases (horizontal and rotated boxes); box text through the codec."""

import math

import numpy as np
import pytest
import torch

from rsvlm_zoo.data.box_codec import BoxCodec
from rsvlm_zoo.evaluation.answer_metrics import build_answer_metrics
from rsvlm_zoo.metrics import GroundingAccuracy
from rsvlm_zoo.metrics.grounding import box_corners, box_iou_pairs, pair_ious, rotated_box_iou_pairs


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


# Rotated boxes: (x1, y1, x2, y2, angle_degrees), turned about the centre, positive turning x toward y.

SQRT2 = math.sqrt(2.0)


def rotated_iou(a, b):
    pred = torch.tensor([a], dtype=torch.float64)
    true = torch.tensor([b], dtype=torch.float64)
    return float(pair_ious(pred, true)[2][0])


def test_square_and_the_same_square_turned_45_degrees():
    # The intersection is a regular octagon with inradius 1: area 8 tan(22.5°) = 8 (√2 - 1); union 8 - that.
    inter = 8 * (SQRT2 - 1)
    expected = inter / (8 - inter)
    assert expected == pytest.approx(1 / SQRT2)
    assert rotated_iou((0, 0, 2, 2, 0), (0, 0, 2, 2, 45)) == pytest.approx(expected, abs=1e-12)
    assert rotated_iou((0, 0, 2, 2, 45), (0, 0, 2, 2, 0)) == pytest.approx(expected, abs=1e-12)
    # a square turned by 90 or 180 degrees is itself
    assert rotated_iou((0, 0, 2, 2, 90), (0, 0, 2, 2, 0)) == pytest.approx(1.0, abs=1e-12)
    assert rotated_iou((3, 1, 7, 9, 180), (3, 1, 7, 9, 0)) == 1.0


def test_rectangles_turned_by_right_angles_and_translated_copies():
    # 4x2 turned by 90° about its centre (2, 1) is the 2x4 box (1, -1, 3, 3)
    assert rotated_iou((0, 0, 4, 2, 90), (1, -1, 3, 3)) == pytest.approx(1.0, abs=1e-12)
    # the 4x2 box against itself turned by 90°: a 2x2 cross-over, IoU 4 / (8 + 8 - 4)
    assert rotated_iou((0, 0, 4, 2, 90), (0, 0, 4, 2)) == pytest.approx(1 / 3, abs=1e-12)
    # two 2x2 squares turned by 30°, the second shifted by (1, 0) in pixels: in the squares' own frame the shift is
    # (cos 30°, -sin 30°), so they overlap on (2 - cos 30°) x (2 - sin 30°)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    inter = (2 - c) * (2 - s)
    assert rotated_iou((0, 0, 2, 2, 30), (1, 0, 3, 2, 30)) == pytest.approx(inter / (8 - inter), abs=1e-12)
    # touching from outside and far apart: 0
    assert rotated_iou((0, 0, 2, 2, 45), (10, 10, 12, 12, 45)) == 0.0
    assert rotated_iou((0, 0, 2, 2, 30), (0, 0, 2, 2, 30)) == pytest.approx(1.0, abs=1e-12)


def test_angle_sign_convention():
    # a positive angle turns the x axis toward the y axis (clockwise on screen, y pointing down)
    corners = box_corners(np.array([[-1.0, -0.5, 1.0, 0.5, 90.0]]))[0]
    assert np.allclose(corners, [[0.5, -1.0], [0.5, 1.0], [-0.5, 1.0], [-0.5, -1.0]])
    # a thin bar through the origin turned +45° runs down-right, through the square below-right of the origin;
    # turned -45° it runs up-right, through the mirrored square
    bar = (-3.0, -0.1, 3.0, 0.1)
    below, above = (0, 0, 1, 1), (0, -1, 1, 0)
    assert rotated_iou((*bar, 45), below) > 0.05 and rotated_iou((*bar, 45), above) < 0.01
    assert rotated_iou((*bar, 45), below) == pytest.approx(rotated_iou((*bar, -45), above), abs=1e-12)


def _turn_pair(a, b, phi):
    """Both boxes turned by phi about the origin (centres moved, phi added to the angles)."""
    c, s = math.cos(math.radians(phi)), math.sin(math.radians(phi))
    out = []
    for x1, y1, x2, y2, ang in (a, b):
        cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        nx, ny = c * cx - s * cy, s * cx + c * cy
        out.append((nx - hw, ny - hh, nx + hw, ny + hh, ang + phi))
    return out


def _clip_area(subject, clip):
    """Sutherland-Hodgman clipping of one convex polygon by another, in plain Python: the reference area."""

    def side(p, a, b):
        return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])

    poly = list(subject)
    for i in range(len(clip)):
        a, b = clip[i], clip[(i + 1) % len(clip)]
        out = []
        for j in range(len(poly)):
            p, q = poly[j], poly[(j + 1) % len(poly)]
            sp, sq = side(p, a, b), side(q, a, b)
            if sp >= 0:
                out.append(p)
            if (sp >= 0) != (sq >= 0):
                t = sp / (sp - sq)
                out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
        poly = out
        if not poly:
            return 0.0
    return abs(sum(p[0] * q[1] - q[0] * p[1] for p, q in zip(poly, poly[1:] + poly[:1], strict=True))) / 2


def test_random_rotated_pairs_match_plain_polygon_clipping_and_joint_turns():
    rng = np.random.default_rng(3)
    n = 300
    centres = rng.uniform(0, 50, (n, 2))
    boxes_a = np.concatenate([centres - rng.uniform(1, 20, (n, 2)), centres + rng.uniform(1, 20, (n, 2))], axis=1)
    shifted = centres + rng.normal(0, 8, (n, 2))
    boxes_b = np.concatenate([shifted - rng.uniform(1, 20, (n, 2)), shifted + rng.uniform(1, 20, (n, 2))], axis=1)
    a = np.concatenate([boxes_a, rng.uniform(-180, 180, (n, 1))], axis=1)
    b = np.concatenate([boxes_b, rng.uniform(-180, 180, (n, 1))], axis=1)
    inter, _, iou = rotated_box_iou_pairs(torch.from_numpy(a), torch.from_numpy(b))
    corners_a, corners_b = box_corners(a), box_corners(b)
    expected = [
        _clip_area([tuple(p) for p in ca], [tuple(p) for p in cb]) for ca, cb in zip(corners_a, corners_b, strict=True)
    ]
    assert np.allclose(inter.numpy(), expected, rtol=1e-9, atol=1e-9)
    assert 0.3 < (iou > 0).double().mean() < 1  # overlapping and disjoint pairs both occur
    for k in range(0, n, 30):  # IoU does not change when both boxes turn together about any point
        ta, tb = _turn_pair(tuple(a[k]), tuple(b[k]), 37.0)
        assert rotated_iou(ta, tb) == pytest.approx(float(iou[k]), abs=1e-9)


def test_zero_angles_on_the_polygon_path_equal_the_closed_form():
    rng = np.random.default_rng(4)
    lo = rng.uniform(0, 100, (500, 2, 2))
    boxes = np.concatenate([lo, lo + rng.uniform(0, 40, (500, 2, 2))], axis=2)
    pred, true = torch.from_numpy(boxes[:, 0]), torch.from_numpy(boxes[:, 1])
    zero = torch.zeros(500, 1, dtype=torch.float64)
    polygon = rotated_box_iou_pairs(torch.cat([pred, zero], 1), torch.cat([true, zero], 1))
    closed = box_iou_pairs(pred, true)
    for got, want in zip(polygon, closed, strict=True):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-9)


def test_metric_mixes_horizontal_and_rotated_boxes():
    inter45 = 8 * (SQRT2 - 1)
    m = GroundingAccuracy()
    m.update([(0, 0, 2, 2, 45), (0, 0, 10, 10), None], [(0, 0, 2, 2), (0, 0, 10, 10, 0), (0, 0, 4, 2, 30)])
    got = scores(m)
    assert got["miou"] == pytest.approx((1 / SQRT2 + 1) / 3)
    assert got["ciou"] == pytest.approx((inter45 + 100) / ((8 - inter45) + 100 + 8))  # a miss adds its area
    assert got["acc@0.5"] == pytest.approx(2 / 3) and got["acc@0.75"] == pytest.approx(1 / 3)
    assert got["unparsed"] == 1
    with pytest.raises(ValueError, match="five with the angle"):
        GroundingAccuracy().update([(0, 0, 1, 1, 0, 0)], [(0, 0, 1, 1)])


def test_empty_and_inverted_rotated_boxes_score_zero():
    assert rotated_iou((0, 0, 0, 5, 30), (0, 0, 5, 5, 0)) == 0.0
    assert rotated_iou((5, 5, 0, 0, 30), (0, 0, 5, 5, 0)) == 0.0
