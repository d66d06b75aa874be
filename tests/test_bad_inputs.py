"""The bad-input catalogue through RegionDataModule: a clear error naming file/record and fix, or a counted skip.

Reader-level items (malformed JSON, unknown split, duplicate ids, non-UTF-8 text, polygons with < 3 points,
boxes outside the image) are rejected while reading, see tests/data/test_readers_formats.py; here are the ones
that reach the loader.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rsvlm_zoo.data.processor import InputSpec
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample, Turn
from rsvlm_zoo.datamodules import RegionDataModule
from rsvlm_zoo.tokens import build_tiny_tokenizer
from tests.sources import ListSource


def good_mask() -> np.ndarray:
    m = np.zeros((40, 50), bool)
    m[5:15, 5:20] = True
    return m


def scene(image, regions=None, text="<image>\nWhat is <mask><pos>?", answer="a car", sid="bad") -> Sample:
    turns = [Turn("human", text)] + ([Turn("gpt", answer)] if answer else [])
    regions = [Region(mask=good_mask())] if regions is None else regions
    return Sample(image, 50, 40, regions=regions, conversation=turns, sample_id=sid, source="ann.json")


def bad_sample(kind: str, tmp_path) -> tuple[Sample, str]:
    """One broken sample and the message it must give (record, problem, fix)."""
    pixels = np.zeros((40, 50, 3), np.uint8)
    where = r"record 'bad' in ann.json: "
    if kind == "missing image":
        return scene(tmp_path / "nope.png"), r"nope.png: image file not found; check the images directory"
    if kind == "truncated JPEG":
        path = tmp_path / "t.jpg"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:300])
        return scene(path), r"t.jpg: cannot decode image .*truncated or corrupt, re-download or re-encode it"
    if kind == "mask of the wrong size":
        return scene(
            pixels, [Region(mask=np.ones((10, 10), bool))]
        ), where + "region 0: mask is 10x10 but image is 50x40"
    if kind == "empty mask":
        return scene(
            pixels, [Region(mask=np.zeros((40, 50), bool))]
        ), where + r"region\(s\) \[0\] have empty masks; fix"
    if kind == "polygon with 2 points":
        region = Region(polygons=[np.array([[1.0, 1.0], [9.0, 9.0]])])
        return scene(pixels, [region]), where + "region 0: polygon 0 has 2 point.* needs at least 3"
    if kind == "region-token count != region count":
        text = "<image>\nCompare <mask><pos> and <mask><pos>."
        return scene(pixels, text=text), where + "text has 2 <mask><pos> placeholders but the sample has 1 regions"
    if kind == "no answer turn":
        return scene(pixels, answer=None), "no answer turn after its last question; add a 'gpt' turn"
    if kind == "image size differs":
        return scene(np.zeros((41, 50, 3), np.uint8)), where + "image is 50x41 but the annotation says 50x40; fix"
    raise AssertionError(kind)


KINDS = [
    "missing image",
    "truncated JPEG",
    "mask of the wrong size",
    "empty mask",
    "polygon with 2 points",
    "region-token count != region count",
    "no answer turn",
    "image size differs",
]


def module(samples, on_bad_sample) -> RegionDataModule:
    dm = RegionDataModule(train=ListSource(samples), batch_size=len(samples), on_bad_sample=on_bad_sample)
    dm.attach(InputSpec(build_tiny_tokenizer(), (32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 2))
    return dm


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_is_a_clear_error_or_a_counted_skip(kind, tmp_path):
    bad, message = bad_sample(kind, tmp_path)
    good = scene(np.zeros((40, 50, 3), np.uint8), sid="good")
    with pytest.raises(DataFormatError, match=message):
        next(iter(module([good, bad], "error").train_dataloader()))
    batch = next(iter(module([good, bad, good], "skip").train_dataloader()))
    assert batch["skipped"] == 1 and batch["sample_ids"] == ["good", "good"]
