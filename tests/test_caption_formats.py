"""A Karpathy file trains and scores on the same captions: the data reader and the metrics' references agree."""

from __future__ import annotations

import json

import pytest

from rsvlm_zoo.data.readers.captions import read_karpathy
from rsvlm_zoo.data.schema import DataFormatError
from rsvlm_zoo.metrics.caption_io import CaptionDataError, load_references

IMAGES = [
    {"filename": "a.png", "imgid": 3, "split": "test", "sentences": [{"raw": "A ship ."}, {"tokens": ["two", "ship"]}]},
    {"filename": "b.png", "imgid": 4, "split": "train", "sentences": [{"raw": "a harbour"}]},
    {"filename": "c.png", "imgid": 5, "split": "test", "sentences": [{"raw": "storage tanks"}]},
]


def test_reader_and_references_take_the_same_ids_and_captions_per_split(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"images": IMAGES}))
    for split in ("test", "train"):
        samples = read_karpathy(path, tmp_path, split=split)
        refs = load_references(path, split=split)
        assert {s.sample_id: list(s.captions) for s in samples} == refs.captions
    assert refs.captions == {"4": ["a harbour"]}
    assert load_references(path, split="test").captions["3"] == ["A ship .", "two ship"]


def test_a_sentence_without_text_is_named_by_both(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"images": [{**IMAGES[0], "sentences": [{"raw": "ok"}, {"raw": 7}]}]}))
    with pytest.raises(DataFormatError, match=r"images\[0\] imgid=3: sentences\[1\] has no raw caption string"):
        read_karpathy(path, tmp_path)
    with pytest.raises(CaptionDataError, match=r"images\[0\]: sentences\[1\] has no raw caption string"):
        load_references(path, split="all")
