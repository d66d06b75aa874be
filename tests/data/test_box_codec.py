"""BoxCodec: text forms and round trips within grid quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from rsvlm_zoo.data.box_codec import CONVENTIONS, BoxCodec
from rsvlm_zoo.data.schema import DataFormatError

W, H = 640, 480
TOLERANCE = {
    "grid100": (W / 200, H / 200),
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
        angle = float(rng.integers(-90, 90)) if rng.random() < 0.5 else None
        text = codec.encode((x1, y1, x2, y2), W, H, angle=angle)
        ((box, got_angle),) = codec.decode(f"The object is at {text} here.", W, H)
        tx, ty = TOLERANCE[convention]
        assert np.allclose(box[0::2], (x1, x2), atol=tx + 1e-9) and np.allclose(box[1::2], (y1, y2), atol=ty + 1e-9)
        assert got_angle == angle


def test_text_forms():
    box = (64.0, 48.0, 320.0, 240.0)
    assert BoxCodec("grid100").encode(box, W, H) == "{<10><10><50><50>}"
    assert BoxCodec("grid100").encode(box, W, H, angle=-30) == "{<10><10><50><50>|<-30>}"
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
