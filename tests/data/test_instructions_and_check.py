"""Instruction builders and the `rsvlm data check` checker."""

from __future__ import annotations

import pytest
from rsdata_helpers import osprey_record, write_image, write_json

from rsvlm_zoo.cli.data import data_main
from rsvlm_zoo.data.check import check_dataset
from rsvlm_zoo.data.instructions import category_task, detailed_description_task, region_caption_task
from rsvlm_zoo.data.readers import read_annotations
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample
from rsvlm_zoo.tokens import OVERVIEW


def scene(n=2):
    regions = [Region(box=(k, k, k + 5, k + 5), category=f"cat{k}", text=f"text {k}") for k in range(n)]
    return Sample(image="x.png", width=32, height=32, regions=regions, sample_id="s")


def test_category_task_list_form():
    out = category_task(scene())
    first = out.conversation[0].text
    assert first == (
        OVERVIEW + "There are 2 part regions in the picture: region1<mask><pos>, region2<mask><pos>.\n"
        "What is the category of region1? Using only one word or phrase."
    )
    assert [t.text for t in out.conversation if t.role == "gpt"] == ["cat0", "cat1"]
    assert out.region_refs is None and sum(t.text.count("<mask>") for t in out.conversation) == 2


def test_category_task_per_region_and_shuffle():
    out = category_task(scene(3), per_region=True, shuffle=True, seed=1)
    questions = [t.text for t in out.conversation if t.role == "human"]
    assert questions[0].startswith(OVERVIEW)
    assert questions[1] == "What is the category of <mask><pos>? Using only one word or phrase."
    answers = [t.text for t in out.conversation if t.role == "gpt"]
    refs = out.region_refs or [0, 1, 2]
    assert answers == [f"cat{k}" for k in refs] and sorted(refs) == [0, 1, 2]


def test_region_caption_and_detailed_description():
    cap = region_caption_task(scene())
    assert cap.conversation[0].text == OVERVIEW + "Please give me a short description of <mask><pos>."
    assert cap.conversation[1].text == "text 0" and cap.region_refs is None
    det = detailed_description_task(scene())
    assert det.region_refs == [0, 1, 0, 1]
    n_mask = sum(t.text.count("<mask><pos>") for t in det.conversation)
    assert n_mask == len(det.region_refs) == 4
    assert det.conversation[2].text == "Can you provide me with a detailed description of region2<mask><pos>?"
    orig = scene()
    orig.regions[1].text = None
    with pytest.raises(DataFormatError, match="region 1 has no text"):
        region_caption_task(orig)


def test_instruction_does_not_touch_lazy_size(real_data):
    sample = read_annotations("dota", real_data / "regions/dota/labelTxt")[0]
    out = category_task(sample, per_region=True, max_regions=3)
    assert len(out.conversation) == 6 and out.regions is not sample.regions
    assert not out.size_known() and (out.width, out.height) == (712, 557)


def good_coco(tmp_path):
    write_image(tmp_path / "images" / "a.jpg", 64, 48)
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [1, 1, 10, 10],
                "segmentation": [[1, 1, 11, 1, 11, 11]],
            }
        ],
        "categories": [{"id": 1, "name": "car"}],
    }
    return write_json(tmp_path / "instances.json", doc)


def test_check_good_input(tmp_path, capsys):
    path = good_coco(tmp_path)
    assert data_main(["check", "coco", str(path), "--images", str(tmp_path / "images")]) == 0
    out = capsys.readouterr().out
    assert "  images " in out and "category car" in out and "OK: 0 error(s)" in out
    lines = {line.split()[0] + " " + line.split()[1]: line.split() for line in out.splitlines()[1:] if line.strip()}
    assert lines["regions 1"] and lines["missing images"][-2:] == ["0", "ok"]


def test_check_broken_input(tmp_path, capsys):
    write_image(tmp_path / "images" / "a.jpg", 64, 48)
    trunc = write_image(tmp_path / "images" / "t.jpg", 64, 48)
    trunc.write_bytes(trunc.read_bytes()[:-200])
    doc = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "gone.jpg", "width": 64, "height": 48},
            {"id": 3, "file_name": "t.jpg", "width": 64, "height": 48},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 10]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [100, 100, 5, 5]},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [60, 1, 10, 5]},
            {"id": 4, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 2]]},
            {"id": 5, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 5, 9, 9]]},
        ],
        "categories": [{"id": 1, "name": "car"}],
    }
    path = write_json(tmp_path / "instances.json", doc)
    report = check_dataset("coco", path, tmp_path / "images")
    assert report.samples == 3 and report.regions == 4
    assert report.problems == {
        "bad records (skipped)": 1,
        "missing images": 1,
        "unreadable images": 1,
        "zero-area boxes": 1,
        "boxes outside the image": 1,
        "boxes crossing the border": 1,
        "empty masks": 1,
    }
    assert report.errors == 6  # the border crossing only warns
    assert data_main(["check", "coco", str(path), "--images", str(tmp_path / "images")]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("missing images"))
    assert row.split()[-2:] == ["1", "ERROR"] and "FAILED: 6 error(s)" in out


def test_check_mask_references(tmp_path, capsys):
    write_image(tmp_path / "a.jpg", 64, 48)
    path = write_json(tmp_path / "o.json", [osprey_record(n_regions=3, n_masks=2), osprey_record(2, 3)])
    report = check_dataset("osprey", path, tmp_path)
    assert report.problems["regions never referenced"] == 1
    assert report.problems["<mask> refs without a region"] == 1
    assert data_main(["check", "osprey", str(tmp_path / "missing.json")]) == 1
    assert "annotation file not found" in capsys.readouterr().err


def test_check_real_isaid(real_data):
    report = check_dataset("coco", real_data / "regions/isaid/instances.json")
    assert (report.images, report.regions, report.errors) == (2, 190, 0)
    assert report.splits == {"train": 1, "val": 1}
