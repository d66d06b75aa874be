"""Osprey, MGIMM and LLaVA/GeoChat readers on small written files."""

from __future__ import annotations

import pytest
from rsdata_helpers import osprey_record, write_image, write_json

from rsvlm_zoo.data.box_codec import BoxCodec
from rsvlm_zoo.data.readers import read_annotations
from rsvlm_zoo.data.schema import DataFormatError
from rsvlm_zoo.tokens import MGIMM_ATTRIBUTE_PROMPT, OVERVIEW


def test_osprey_conversation(tmp_path):
    (s,) = read_annotations("osprey", write_json(tmp_path / "o.json", [osprey_record()]))
    assert len(s.regions) == 2 and s.regions[0].polygons[0].shape == (4, 2)
    assert s.regions[1].box == (12.0, 2.0, 19.0, 9.0) and s.regions[1].category == "2"
    assert [t.role for t in s.conversation] == ["human", "gpt"]


def test_osprey_mask_count_mismatch(tmp_path):
    path = write_json(tmp_path / "o.json", [osprey_record(n_regions=2, n_masks=3)])
    with pytest.raises(DataFormatError, match=r"record 0 \(a.jpg\): .*3 <mask><pos> placeholders .*supports 2"):
        read_annotations("osprey", path)


def test_osprey_no_answer_turn(tmp_path):
    rec = osprey_record()
    rec["conversations"] = rec["conversations"][:1]
    with pytest.raises(DataFormatError, match="no answer"):
        read_annotations("osprey", write_json(tmp_path / "o.json", [rec]))


def test_osprey_rle_region_and_region_refs(tmp_path):
    rec = osprey_record(n_regions=1, n_masks=2, region_refs=[0, 0])
    rec["annotation"] = [{"segmentation": {"size": [48, 64], "counts": [100, 20, 48 * 64 - 120]}}]
    (s,) = read_annotations("osprey", write_json(tmp_path / "o.json", [rec]))
    assert s.region_refs == [0, 0] and s.regions[0].rle["size"] == [48, 64]
    rec["annotation"][0]["segmentation"]["size"] = [10, 10]
    with pytest.raises(DataFormatError, match="RLE size"):
        read_annotations("osprey", write_json(tmp_path / "o.json", [rec]))


def test_osprey_description_becomes_conversation(tmp_path):
    rec = osprey_record(n_regions=2)
    del rec["conversations"]
    rec["description"] = ["<region2>: a red roof", "<region1>: a tree"]
    (s,) = read_annotations("osprey", write_json(tmp_path / "o.json", [rec]))
    assert s.conversation[0].text.startswith(OVERVIEW) and s.conversation[0].text.count("<mask><pos>") == 1
    assert [t.text for t in s.conversation if t.role == "gpt"] == ["a red roof", "a tree"]
    assert s.region_refs == [1, 0]


def test_osprey_raw_prefix_option(tmp_path):
    rec = osprey_record(n_regions=2)
    rec["conversations"] = [{"from": "human", "value": "What is <region1>?"}, {"from": "gpt", "value": "x"}]
    path = write_json(tmp_path / "o.json", [rec])
    (raw,) = read_annotations("osprey", path)  # Osprey-724K's raw text, read as Osprey's loader does
    assert raw.conversation[0].text.endswith("region1<mask><pos>,region2<mask><pos>. What is region1?")
    (s,) = read_annotations("osprey", path, add_region_prefix=True)
    assert s.conversation[0].text.endswith("region2<mask><pos>.\nWhat is region1?")


def test_mgimm_region_attributes(tmp_path):
    doc = {
        "images": [{"id": 5, "file_name": "m.jpg", "width": 64, "height": 48}],
        "annotations": [
            {"image_id": 5, "bbox": [1, 2, 10, 20], "caption": "white car"},
            {"image_id": 5, "bbox": [3, 4, 5, 6], "caption": "tree"},
        ],
    }
    samples = read_annotations("mgimm-region", write_json(tmp_path / "m.json", doc))
    assert len(samples) == 2 and samples[0].regions[0].box == (1.0, 2.0, 11.0, 22.0)
    assert samples[0].regions[0].text == "white car"
    assert samples[0].conversation[0].text == MGIMM_ATTRIBUTE_PROMPT
    assert samples[0].conversation[1].text == "white car"


def test_mgimm_description(tmp_path):
    rec = {
        "image_id": 1,
        "file_name": "m.jpg",
        "width": 64,
        "height": 48,
        "bbox": [[1, 2, 10, 20], [3, 4, 5, 6]],
        "conversations": [
            {"from": "human", "value": "<image>\nDescribe."},
            {"from": "gpt", "value": "Two cars."},
        ],
    }
    (s,) = read_annotations("mgimm-description", write_json(tmp_path / "d.json", [rec]))
    assert [r.box for r in s.regions] == [(1.0, 2.0, 11.0, 22.0), (3.0, 4.0, 8.0, 10.0)]
    assert s.conversation[1].text == "Two cars."


def test_llava_geochat_boxes(tmp_path):
    write_image(tmp_path / "images" / "g.png", 200, 100)
    rec = {
        "id": "g1",
        "image": "g.png",
        "conversations": [
            {"from": "human", "value": "<image>\nWhere is the ship?"},
            {"from": "gpt", "value": "Here {<10><20><30><40>|<45>} and {<50><50><60><70>}."},
            {"from": "human", "value": "And the first one again?"},
            {"from": "gpt", "value": "{<10><20><30><40>|<45>}"},
        ],
    }
    path = write_json(tmp_path / "l.json", [rec])
    (s,) = read_annotations("llava", path)
    assert [r.box for r in s.regions] == [(20.0, 20.0, 60.0, 40.0), (100.0, 50.0, 120.0, 70.0)]
    assert s.regions[0].attributes["angle"] == 45.0 and "angle" not in s.regions[1].attributes
    (r,) = read_annotations("llava", path, replace_boxes="<mask><pos>")
    assert r.conversation[1].text == "Here <mask><pos> and <mask><pos>." and r.region_refs == [0, 1, 0]
    codec = BoxCodec("grid100")
    assert codec.encode(s.regions[0].box, 200, 100, angle=45) == "{<10><20><30><40>|<45>}"


def test_llava_missing_image_token_and_text_only(tmp_path):
    rec = {
        "id": 1,
        "image": "g.png",
        "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "x"}],
    }
    with pytest.raises(DataFormatError, match="0 <image> tokens"):
        read_annotations("llava", write_json(tmp_path / "l.json", [rec]))
    samples = read_annotations(
        "llava",
        write_json(tmp_path / "l.json", [{"id": 2, "conversations": []}, rec]),
        on_bad_record="skip",
        check_tokens=False,
    )
    assert len(samples) == 1 and samples.report.skipped == 1 and "no 'image'" in samples.report.reasons[0]
