"""Osprey-724K's raw files, each kind in its real record layout, read as Osprey's own loader reads them."""

from __future__ import annotations

import pytest
from rsdata_helpers import osprey_record, write_image, write_json

from rsvlm_zoo.data.check import check_dataset
from rsvlm_zoo.data.readers import read_annotations
from rsvlm_zoo.data.readers.osprey_724k import DETAILED_QUESTIONS, SHORT_SUFFIX, kind_from_file_name
from rsvlm_zoo.data.schema import DataFormatError
from rsvlm_zoo.tokens import OVERVIEW

HEAD2 = OVERVIEW + "Ther are 2 part regions in the picture: region1<mask><pos>,region2<mask><pos>. "


def annotation(k: int) -> dict:
    """One region as Osprey-724K writes it: COCO polygon, xywh box, area, id, category id."""
    x = 4 + 20 * k
    return {
        "bbox": [x, 6, 12, 10],
        "segmentation": [[x, 6, x + 12, 6, x + 12, 16, x, 16]],
        "area": 120.0,
        "id": 1000 + k,
        "category_id": 3,
        "iscrowd": 0,
    }


def raw_record(turns: list[tuple[str, str]], n_regions: int = 2, file_name: str = "COCO_train2014_000000000139.jpg"):
    """A record of osprey_conversation.json / short_form / part_level / lvis_positive_negative."""
    conversations = []
    for question, answer in turns:
        conversations += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return {
        "id": 139,
        "file_name": file_name,
        "height": 48,
        "width": 64,
        "annotation": [annotation(k) for k in range(n_regions)],
        "conversations": conversations,
    }


@pytest.fixture
def folder(tmp_path):
    write_image(tmp_path / "images" / "000000000139.jpg", 64, 48)  # Osprey's imgs folder: COCO_train2014_ dropped
    return tmp_path


def read_one(path, **options):
    samples = read_annotations("osprey", path, **options)
    assert len(samples) == 1
    return samples[0]


def test_conversation_file_gets_the_region_list_and_loses_its_angle_brackets(folder):
    rec = raw_record(
        [
            (
                "What is the relationship between <region1> and <region2>?",
                "The <region1> man holds the <region2> kite.",
            ),
            ("What colour is <region2>?", "Red."),
        ]
    )
    s = read_one(write_json(folder / "osprey_conversation.json", [rec]))
    assert [t.text for t in s.conversation] == [
        HEAD2 + "What is the relationship between region1 and region2?",
        "The region1 man holds the region2 kite.",
        "What colour is region2?",
        "Red.",
    ]
    assert s.region_refs is None and s.meta["osprey_kind"] == "conversation"
    assert s.image.name == "000000000139.jpg" and s.image.is_file()
    assert len(s.regions) == 2 and s.regions[1].box == (24.0, 6.0, 36.0, 16.0)


def test_any_file_with_region_names_and_no_mask_tokens_reads_as_a_conversation(folder):
    rec = raw_record([("Describe <region1> next to <region2>.", "A man and a kite.")])
    s = read_one(write_json(folder / "mine.json", [rec]))
    assert s.conversation[0].text == HEAD2 + "Describe region1 next to region2."
    assert s.meta["osprey_kind"] == "conversation"


def test_short_form_questions_end_with_the_single_word_instruction(folder):
    rec = raw_record([("What is <region1>?", "man"), ("What is <region2> made of?", "nylon")])
    s = read_one(write_json(folder / "osprey_short_form.json", [rec]))
    assert s.conversation[0].text == HEAD2 + "What is region1?" + SHORT_SUFFIX
    assert s.conversation[2].text == "What is region2 made of?" + SHORT_SUFFIX
    assert SHORT_SUFFIX == " Answer the question using a single word or phrase."
    assert s.meta["osprey_kind"] == "short-form"


def test_part_level_file_with_one_region_gets_the_singular_region_list(folder):
    rec = raw_record([("What is the category of <region1>?", "dog: head")], n_regions=1, file_name="000000000139.jpg")
    s = read_one(write_json(folder / "osprey_part_level.json", [rec]))
    head = OVERVIEW + "Ther are 1 part region in the picture: region1<mask><pos>. "
    assert s.conversation[0].text == head + "What is the category of region1?" + SHORT_SUFFIX
    assert s.conversation[1].text == "dog: head" and s.meta["osprey_kind"] == "part-level"


def test_lvis_positive_negative_questions_get_mask_tokens_in_place(folder):
    rec = raw_record([("Is <region1> a kite?", "No"), ("Is <region2> a kite?", "Yes")], file_name="000000000139.jpg")
    rec2 = raw_record(
        [("Is <region2> a person?", "No"), ("Is <region1> a person?", "Yes")], file_name="000000000139.jpg"
    )
    first, second = read_annotations("osprey", write_json(folder / "osprey_lvis_positive_negative.json", [rec, rec2]))
    assert [t.text for t in first.conversation] == [
        OVERVIEW + "Is <mask><pos> a kite?",
        "No",
        "Is <mask><pos> a kite?",
        "Yes",
    ]
    assert first.region_refs is None and first.meta["osprey_kind"] == "lvis-pos-neg"
    assert second.region_refs == [1, 0]  # each <mask><pos> is the region its question names


def test_detailed_descriptions_get_osprey_question_templates(folder):
    rec = raw_record([], file_name="COCO_train2014_000000000139.jpg")
    del rec["conversations"]
    rec["description"] = ["<region1>: A man in a blue shirt flying a kite.", "<region2>: A red kite in the sky."]
    path = write_json(folder / "osprey_detail_description.json", [rec])
    s = read_one(path)
    questions = [t.text for t in s.conversation if t.role == "human"]
    templates = {q.replace("<region>", "<mask><pos>") for q in DETAILED_QUESTIONS}
    assert questions[0].startswith(OVERVIEW) and questions[0][len(OVERVIEW) :] in templates
    assert questions[1] in templates
    assert [t.text for t in s.conversation if t.role == "gpt"] == [
        "A man in a blue shirt flying a kite.",
        "A red kite in the sky.",
    ]
    assert s.region_refs is None and s.meta["osprey_kind"] == "detailed-description"
    assert [t.text for t in read_one(path).conversation] == [t.text for t in s.conversation]  # same every read
    first = read_one(path, description_questions="first")
    assert first.conversation[2].text == DETAILED_QUESTIONS[0].replace("<region>", "<mask><pos>")


def test_records_without_a_question_answer_pair_are_dropped_and_counted(folder):
    empty = raw_record([])
    samples = read_annotations(
        "osprey", write_json(folder / "osprey_conversation.json", [empty, raw_record([("Q <region1>", "A")])])
    )
    assert len(samples) == 1 and samples.report.skipped == 1
    assert "no question-answer pair" in samples.report.reasons[0]


def test_a_file_mixing_both_forms_names_the_record_and_the_option(folder):
    path = write_json(folder / "o.json", [osprey_record(), raw_record([("What is <region1>?", "a man")])])
    with pytest.raises(DataFormatError, match=r"record 1 \(COCO_train2014_000000000139.jpg\).*--option kind=tokens"):
        read_annotations("osprey", path)
    (s, raw) = read_annotations("osprey", path, kind="tokens", check_tokens=False)
    assert raw.conversation[0].text == "What is <region1>?"


def test_a_record_with_both_forms_names_the_option(folder):
    rec = osprey_record()
    rec["conversations"][0]["value"] += " Is it next to <region2>?"
    with pytest.raises(DataFormatError, match=r"record 0 \(a.jpg\): .*both .*--option kind=tokens"):
        read_annotations("osprey", write_json(folder / "o.json", [rec]))


def test_regions_never_referenced_in_either_form_name_the_option(folder):
    rec = raw_record([("What is in the picture?", "A man with a kite.")])
    path = write_json(folder / "o.json", [rec])
    with pytest.raises(DataFormatError, match=r"record 0 .*2 regions but no record references.*kind=conversation"):
        read_annotations("osprey", path)
    assert read_one(path, kind="conversation").conversation[0].text == HEAD2 + "What is in the picture?"


def test_the_zoo_region_list_and_the_kind_from_file_names():
    assert kind_from_file_name("data/osprey_lvis_positive_negative.json") == "lvis-pos-neg"
    assert kind_from_file_name("less/osprey_part_level_100.json") == "part-level"
    assert kind_from_file_name("osprey_conversation_v2.json") == "conversation"
    assert kind_from_file_name("my_osprey.json") is None


def test_zoo_prefix_and_bad_options(folder):
    rec = raw_record([("What is <region1>?", "a man")])
    path = write_json(folder / "osprey_conversation.json", [rec])
    s = read_one(path, region_prefix="zoo")
    assert s.conversation[0].text.endswith("region1<mask><pos>, region2<mask><pos>.\nWhat is region1?")
    with pytest.raises(ValueError, match="kind must be one of"):
        read_annotations("osprey", path, kind="lvis")


def test_data_check_counts_a_raw_conversation_file_without_problems(folder):
    recs = [raw_record([("How does <region1> relate to <region2>?", "It flies it.")]) for _ in range(3)]
    report = check_dataset("osprey", write_json(folder / "osprey_conversation.json", recs), folder / "images")
    assert report.samples == 3 and report.regions == 6
    assert not report.problems
