"""BoxCodec: text forms and round trips within grid quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from rsvlm_zoo.data.box_codec import ANSWER_FORMATS, CONVENTIONS, BoxCodec, answer_box
from rsvlm_zoo.data.schema import DataFormatError

W, H = 640, 480
TOLERANCE = {
    "grid100": (W / 200, H / 200),
    "qwen": (W / 2000, H / 2000),
    "grid1000": (W / 2000, H / 2000),
    "unit": (W / 2000, H / 2000),
    "pixel_xyxy": (0.05, 0.05),
    "pixel_xywh": (0.1, 0.1),
}


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_round_trip(convention):
    codec = BoxCodec(convention)
    rng = np.random.default_rng(0)
    for _ in range(50):
        x1, x2 = sorted(rng.uniform(0, W, 2))
        y1, y2 = sorted(rng.uniform(0, H, 2))
        angle = float(rng.integers(-90, 90)) if rng.random() < 0.5 and codec.has_angle else None
        text = codec.encode((x1, y1, x2, y2), W, H, angle=angle)
        ((box, got_angle),) = codec.decode(f"The object is at {text} here.", W, H)
        tx, ty = TOLERANCE[convention]
        assert np.allclose(box[0::2], (x1, x2), atol=tx + 1e-9) and np.allclose(box[1::2], (y1, y2), atol=ty + 1e-9)
        assert got_angle == angle


def test_text_forms():
    box = (64.0, 48.0, 320.0, 240.0)
    assert BoxCodec("grid100").encode(box, W, H) == "{<10><10><50><50>}"
    assert BoxCodec("grid100").encode(box, W, H, angle=-30) == "{<10><10><50><50>|<-30>}"
    assert BoxCodec("qwen").encode(box, W, H) == "<box>(100,100),(500,500)</box>"
    assert BoxCodec("grid1000").encode(box, W, H) == "[100, 100, 500, 500]"
    assert BoxCodec("unit").encode(box, W, H) == "[0.100, 0.100, 0.500, 0.500]"
    assert BoxCodec("pixel_xyxy").encode(box, W, H) == "[64, 48, 320, 240]"
    assert BoxCodec("pixel_xywh").encode(box, W, H) == "[64, 48, 256, 192]"


def test_find_all_several_boxes():
    text = "ships {<1><2><3><4>|<10>}{<5><6><7><8>} and a plane {<0><0><100><100>}"
    found = BoxCodec("grid100").find_all(text)
    assert [m.values for m in found] == [(1, 2, 3, 4), (5, 6, 7, 8), (0, 0, 100, 100)]
    assert [m.angle for m in found] == [10.0, None, None]
    assert text[found[2].start : found[2].end] == "{<0><0><100><100>}"


def test_out_of_range_and_unknown():
    with pytest.raises(DataFormatError, match="outside 0..100"):
        BoxCodec("grid100").decode("{<10><20><130><40>}", W, H)
    with pytest.raises(DataFormatError, match="outside 0..1"):
        BoxCodec("unit").decode("[0.1, 0.2, 1.5, 0.4]", W, H)
    with pytest.raises(ValueError, match="known: grid100"):
        BoxCodec("yolo")


def test_qwen_boxes_parse_with_spaces_and_have_no_angle():
    codec = BoxCodec("qwen")
    text = "<ref>the ship</ref><box>( 100 , 200 ),(500,1000)</box> and <box>(0,0),(10,10)</box>"
    assert [m.values for m in codec.find_all(text)] == [(100, 200, 500, 1000), (0, 0, 10, 10)]
    assert codec.decode(text, W, H)[0] == ((64.0, 96.0, 320.0, 480.0), None)
    with pytest.raises(ValueError, match="no angle"):
        codec.encode((0, 0, 10, 10), W, H, angle=30)


@pytest.mark.parametrize("box_format", list(ANSWER_FORMATS))
def test_answer_box_round_trip_for_every_format(box_format):
    codec = BoxCodec(ANSWER_FORMATS[box_format])
    rng = np.random.default_rng(1)
    tx, ty = TOLERANCE[codec.convention]
    for _ in range(30):
        x1, x2 = sorted(rng.uniform(0, W, 2))
        y1, y2 = sorted(rng.uniform(0, H, 2))
        angle = float(rng.integers(-90, 90)) if codec.has_angle else None
        got = answer_box(f"It is {codec.encode((x1, y1, x2, y2), W, H, angle=angle)}.", box_format, W, H)
        assert got is not None and len(got) == (5 if codec.has_angle else 4)
        assert np.allclose(got[0:4:2], (x1, x2), atol=tx + 1e-9) and np.allclose(got[1:4:2], (y1, y2), atol=ty + 1e-9)
        if codec.has_angle:
            assert got[4] == angle


def test_answer_box_first_box_only_and_misses():
    assert answer_box("{<10><20><50><60>} then {<1><2><3><4>}", "geochat", 200, 100) == (20.0, 20.0, 100.0, 60.0)
    assert answer_box("{<10><20><50><60>|<-30>}", "geochat", 200, 100) == (20.0, 20.0, 100.0, 60.0, -30.0)
    assert answer_box("[0.1, 0.2, 0.5, 0.6, 15]", "norm1", 200, 100) == pytest.approx((20, 20, 100, 60, 15))
    assert answer_box("no box here", "geochat", 200, 100) is None
    assert answer_box("[10, 20, 50, 60]", "geochat", 200, 100) is None  # written in another format
    # a bad first box is a miss even when a later one is fine
    assert answer_box("{<10><20><500><60>} {<1><2><3><4>}", "geochat", 200, 100) is None
    assert answer_box("{<50><20><10><60>}", "geochat", 200, 100) is None  # inverted
    assert answer_box("<box>(0,0),(1001,5)</box>", "qwen", 200, 100) is None  # off the 0-1000 grid
    assert answer_box("[0.1, 0.2, 1.5, 0.6]", "norm1", 200, 100) is None
    assert answer_box("[10, 20, 300, 60]", "pixels", 200, 100) is None  # outside the 200 x 100 image
    assert answer_box("[-1, 20, 30, 60]", "pixels", 200, 100) is None
    assert answer_box("[10, 20, 200, 100]", "pixels", 200, 100) == (10.0, 20.0, 200.0, 100.0)
    with pytest.raises(ValueError, match="known: geochat"):
        answer_box("[1, 2, 3, 4]", "yolo", 200, 100)
