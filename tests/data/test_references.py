"""`rsvlm data refs`: reference files from DIOR-RSVG, RSVG-HR, VRSBench and GeoChat-Bench annotation layouts."""

from __future__ import annotations

import json
import math

import pytest
from rsdata_helpers import write_image, write_json

from rsvlm_zoo.cli.data import data_main
from rsvlm_zoo.data.references import polygon_to_box, read_references, write_references
from rsvlm_zoo.data.schema import DataFormatError


# ---- fixtures in the published layouts ----------------------------------------------------------------------------
def dior_xml(filename: str, objects: list[tuple[str, tuple[int, int, int, int], str]]) -> str:
    """A DIOR-RSVG annotation as published in RSVGD/Annotations (one <object> per referring expression)."""
    body = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox><description>{text}</description></object>"
        for name, b, text in objects
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<annotation>'
        f"<filename>{filename}</filename><source><database>DIOR</database></source>"
        "<size><width>800</width><height>800</height><depth>3</depth></size><segmented>0</segmented>"
        f"{body}</annotation>"
    )


@pytest.fixture
def dior_root(tmp_path):
    root = tmp_path / "DIOR_RSVG"
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "00001.xml").write_text(
        dior_xml("00001.jpg", [("golffield", (133, 237, 684, 672), "A green and brown golf field")])
    )
    (root / "Annotations" / "00002.xml").write_text(
        dior_xml(
            "00002.jpg",
            [
                ("vehicle", (10, 20, 40, 50), "The vehicle on the upper left"),
                ("storagetank", (300, 310, 380, 390), "The large storage tank in the middle"),
            ],
        )
    )
    (root / "train.txt").write_text("0\n")
    (root / "val.txt").write_text("2\n")
    (root / "test.txt").write_text("1\n")
    return root


def vrsbench_referring(n: int = 2) -> list[dict]:
    """Records as VRSBench's prepare_eval_all.ipynb writes VRSBench_EVAL_referring.json."""
    recs = [
        {
            "image_id": "P0003_0002.png",
            "question": "The small white vehicle parked at the left edge of the lot.",
            "ground_truth": "{<25><40><33><60>}",
            "dataset": "RSBench",
            "question_id": 0,
            "type": "ref",
            "unique": True,
            "obj_corner": [0.25, 0.4, 0.33, 0.4, 0.33, 0.6, 0.25, 0.6],
            "obj_cls": "vehicle",
            "obj_ids": [0],
            "size_group": "small",
        },
        {
            "image_id": "P0003_0002.png",
            "question": "The storage tank in the top right corner.",
            "ground_truth": "{<80><0><100><20>}",
            "dataset": "RSBench",
            "question_id": 1,
            "type": "ref",
            "unique": False,
            "obj_corner": [0.8, 0.0, 1.0, 0.0, 1.0, 0.2, 0.8, 0.2],
            "obj_cls": "storage-tank",
            "obj_ids": [0],
            "size_group": "large",
        },
    ]
    return recs[:n]


def rotated_corners(cx: float, cy: float, w: float, h: float, angle: float) -> list[list[float]]:
    """Corners of a w x h rectangle centred at (cx, cy) turned by `angle` degrees (x axis toward y axis)."""
    a = math.radians(angle)
    out = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        out.append([cx + dx * math.cos(a) - dy * math.sin(a), cy + dx * math.sin(a) + dy * math.cos(a)])
    return out


def geochat_referring_lines() -> list[dict]:
    """Records of GeoChat-Bench referring.jsonl: ground_truth is a list of 4-corner pixel polygons per object."""
    return [
        {
            "question_id": 0,
            "image_id": "P0003_0004",
            "question": "the large vehicle at the top",
            "ground_truth": [[[20, 10], [60, 10], [60, 30], [20, 30]]],
            "type": "ref",
            "dataset": "SOTA",
            "obj_ids": [5],
            "size_group": "small",
        },
        {
            "question_id": 1,
            "image_id": "P0003_0004",
            "question": "the tilted ship",
            "ground_truth": [rotated_corners(100, 50, 40, 20, 30)],
            "type": "ref",
            "dataset": "SOTA",
            "obj_ids": [7],
            "size_group": "medium",
        },
        {
            "question_id": 2,
            "image_id": "P0003_0004",
            "question": "all vehicles",
            "ground_truth": [[[1, 1], [5, 1], [5, 5], [1, 5]], [[10, 10], [15, 10], [15, 15], [10, 15]]],
            "type": "grounding",
            "dataset": "SOTA",
            "obj_ids": [1, 2],
            "size_group": "small",
        },
    ]


def write_jsonl(path, records) -> object:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# ---- DIOR-RSVG ------------------------------------------------------------------------------------------------------
def test_dior_rsvg_split_refs_use_object_indices(dior_root):
    refs = read_references("dior-rsvg", dior_root, split="test")
    assert refs.records == [
        {
            "sample_id": "1",
            "image": "00002.jpg",
            "width": 800,
            "height": 800,
            "box": [10.0, 20.0, 40.0, 50.0],
            "expression": "The vehicle on the upper left",
        }
    ]
    everything = read_references("dior-rsvg", dior_root / "Annotations")
    assert [r["sample_id"] for r in everything.records] == ["0", "1", "2"]
    assert everything.splits == {"train": 1, "test": 1, "val": 1}
    assert "(per split: test 1, train 1, val 1)" in everything.summary()


def test_dior_rsvg_malformed_box_names_file_and_object(dior_root):
    (dior_root / "Annotations" / "00003.xml").write_text(
        dior_xml("00003.jpg", [("dam", (50, 60, 40, 70), "a dam")])  # xmax < xmin
    )
    with pytest.raises(DataFormatError, match=r"00003.xml object 0.*zero or negative area"):
        read_references("dior-rsvg", dior_root)
    refs = read_references("dior-rsvg", dior_root, skip_bad=True)
    assert len(refs.records) == 3 and refs.skipped == {"bad record": 1}


# ---- RSVG-HR --------------------------------------------------------------------------------------------------------
def test_rsvg_hr_lines_keep_commas_in_expressions(tmp_path):
    images = tmp_path / "images"
    write_image(images / "279083_4582370_512_32617_sport_swimming.jpg", 200, 160)
    ann = tmp_path / "Annotations" / "rsvg_hr_test.txt"
    ann.parent.mkdir()
    ann.write_text(
        "279083_4582370_512_32617_sport_swimming.jpg,40.0,45.0,44.7,46.7,find a swimming pool in the middle part\n"
        "\n"
        "279083_4582370_512_32617_sport_swimming.jpg,49.25,87.0,54.88,92.1,a pool on the left, near a parking lot\n"
    )
    refs = read_references("rsvg-hr", ann.parent, images, split="test")
    assert [r["sample_id"] for r in refs.records] == ["rsvg_hr_test:1", "rsvg_hr_test:3"]
    assert refs.records[1]["expression"] == "a pool on the left, near a parking lot"
    assert refs.records[1]["box"] == [49.25, 87.0, 54.88, 92.1]
    assert (refs.records[0]["width"], refs.records[0]["height"]) == (200, 160)
    assert refs.splits == {"test": 2}
    with pytest.raises(DataFormatError, match=r"needs --split.*rsvg_hr_test.txt"):
        read_references("rsvg-hr", ann.parent, images)


def test_rsvg_hr_missing_image_names_line_and_fix(tmp_path):
    ann = tmp_path / "rsvg_hr_test.txt"
    ann.write_text("nowhere.jpg,1,2,3,4,a pool\n")
    (tmp_path / "images").mkdir()
    with pytest.raises(DataFormatError, match=r"rsvg_hr_test.txt: line 1: image 'nowhere.jpg' is not in .*--images"):
        read_references("rsvg-hr", ann, tmp_path / "images")


# ---- VRSBench -------------------------------------------------------------------------------------------------------
def test_vrsbench_referring_grid_to_pixels_uses_width_and_height(tmp_path):
    write_image(tmp_path / "Images_val" / "P0003_0002.png", 200, 100)
    ann = write_json(tmp_path / "VRSBench_EVAL_referring.json", vrsbench_referring())
    refs = read_references("vrsbench-referring", ann, tmp_path / "Images_val")
    assert refs.records == [
        {
            "sample_id": "0",
            "image": "P0003_0002.png",
            "width": 200,
            "height": 100,
            "box": [50.0, 40.0, 66.0, 60.0],
            "expression": "The small white vehicle parked at the left edge of the lot.",
        },
        {
            "sample_id": "1",
            "image": "P0003_0002.png",
            "width": 200,
            "height": 100,
            "box": [160.0, 0.0, 200.0, 20.0],
            "expression": "The storage tank in the top right corner.",
        },
    ]
    assert refs.kind == "grounding" and refs.splits == {"no split": 2}


def test_vrsbench_referring_malformed_and_duplicate_records(tmp_path):
    write_image(tmp_path / "img" / "P0003_0002.png", 200, 100)
    bad = vrsbench_referring()
    bad[1]["ground_truth"] = "{<80><0><120><20>}"  # 120 is off the 0-100 grid
    ann = write_json(tmp_path / "VRSBench_EVAL_referring.json", bad)
    with pytest.raises(DataFormatError, match=r"VRSBench_EVAL_referring.json: record 1: .*outside 0..100"):
        read_references("vrsbench-referring", ann, tmp_path / "img")
    refs = read_references("vrsbench-referring", ann, tmp_path / "img", skip_bad=True)
    assert len(refs.records) == 1 and refs.skipped == {"bad record": 1}
    dup = vrsbench_referring()
    dup[1]["question_id"] = 0
    ann = write_json(tmp_path / "dup.json", dup)
    with pytest.raises(DataFormatError, match=r"record 1: sample_id '0' was already given by record 0"):
        read_references("vrsbench-referring", ann, tmp_path / "img")


def test_vrsbench_caption_and_wrong_file(tmp_path):
    caps = [
        {
            "image_id": "P0003_0002.png",
            "ground_truth": "The image shows a parking lot with many small vehicles.",
            "question": "Describe the image in detail",
            "dataset": "RSBench",
            "question_id": 0,
            "type": "caption",
        }
    ]
    refs = read_references("vrsbench-caption", write_json(tmp_path / "VRSBench_EVAL_Cap.json", caps))
    assert refs.records == [
        {
            "sample_id": "0",
            "image": "P0003_0002.png",
            "references": ["The image shows a parking lot with many small vehicles."],
        }
    ]
    assert refs.kind == "text"
    ann = write_json(tmp_path / "VRSBench_EVAL_referring.json", vrsbench_referring())
    with pytest.raises(DataFormatError, match=r"record 0: has type 'ref', not 'caption'.*vrsbench-referring"):
        read_references("vrsbench-caption", ann)


# ---- GeoChat-Bench --------------------------------------------------------------------------------------------------
def test_polygon_to_box_rotated_and_axis_aligned():
    box, angle = polygon_to_box(rotated_corners(100, 50, 40, 20, 30))
    assert [round(v, 6) for v in box] == [80.0, 40.0, 120.0, 60.0] and round(angle, 6) == 30.0
    box, angle = polygon_to_box(rotated_corners(100, 50, 40, 20, 120))  # same rectangle as -60 degrees
    assert [round(v, 6) for v in box] == [80.0, 40.0, 120.0, 60.0] and round(angle, 6) == -60.0
    assert polygon_to_box([[20, 10], [60, 10], [60, 30], [20, 30]]) == ([20.0, 10.0, 60.0, 30.0], None)
    assert polygon_to_box([[20, 10], [20, 30], [60, 30], [60, 10]]) == ([20.0, 10.0, 60.0, 30.0], None)
    with pytest.raises(DataFormatError, match="not 4 corner points"):
        polygon_to_box([[1, 2], [3, 4], [5, 6]])


def test_geochat_referring_polygons_rotation_and_several_objects(tmp_path):
    images = tmp_path / "GeoChat_images"
    write_image(images / "P0003_0004.png", 160, 120)
    ann = write_jsonl(tmp_path / "referring.jsonl", geochat_referring_lines())
    refs = read_references("geochat-referring", ann, images)
    first, tilted = refs.records
    assert first == {
        "sample_id": "0",
        "image": "P0003_0004.png",
        "width": 160,
        "height": 120,
        "box": [20.0, 10.0, 60.0, 30.0],
        "expression": "the large vehicle at the top",
    }
    assert tilted["box"] == [80.0, 40.0, 120.0, 60.0] and tilted["angle"] == 30.0
    assert refs.skipped == {"several boxes (a grounding reference holds one)": 1}
    assert "question_id 2: ground_truth holds 2 boxes" in refs.skip_messages[0]
    assert "skipped 1 record(s): several boxes" in refs.summary()


def test_geochat_referring_grid_text_carries_angle(tmp_path):
    images = tmp_path / "img"
    write_image(images / "0009.png", 200, 100)
    rec = {
        "question_id": "q9",
        "image_id": "0009",
        "question": "the runway",
        "ground_truth": "{<10><20><60><80>|<-45>}",
    }
    refs = read_references("geochat-referring", write_jsonl(tmp_path / "referring.jsonl", [rec]), images)
    assert refs.records[0]["box"] == [20.0, 20.0, 120.0, 80.0] and refs.records[0]["angle"] == -45.0


def test_geochat_referring_missing_image_and_malformed_line(tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    ann = write_jsonl(tmp_path / "referring.jsonl", geochat_referring_lines()[:1])
    with pytest.raises(DataFormatError, match=r"referring.jsonl: line 1: image 'P0003_0004.png' is not in"):
        read_references("geochat-referring", ann, images)
    write_image(images / "P0003_0004.png", 160, 120)
    rec = dict(geochat_referring_lines()[0], ground_truth=[[[1, 2], [3, 4], [5, 6]]])
    ann = write_jsonl(tmp_path / "bad.jsonl", [rec])
    with pytest.raises(DataFormatError, match=r"bad.jsonl: line 1: ground_truth\[0\] .* not 4 corner points"):
        read_references("geochat-referring", ann, images)
    rec = {k: v for k, v in geochat_referring_lines()[0].items() if k != "question_id"}
    with pytest.raises(DataFormatError, match=r"line 1: has no 'question_id'.*add it or remove the record"):
        read_references("geochat-referring", write_jsonl(tmp_path / "noid.jsonl", [rec]), images)
    (tmp_path / "broken.jsonl").write_text(json.dumps(geochat_referring_lines()[0]) + "\n{not json\n")
    with pytest.raises(DataFormatError, match=r"broken.jsonl: line 2 is not valid JSON"):
        read_references("geochat-referring", tmp_path / "broken.jsonl", images)


def test_geochat_region_caption(tmp_path):
    lines = [
        {
            "question_id": 11,
            "image_id": "P0003_0004",
            "question": "{<20><8><37><25>|<0>}",
            "ground_truth": "a large white vehicle",
            "type": "region_caption",
        },
        {"question_id": 12, "image_id": "P0003_0004", "question": "{<1><1><5><5>|<0>}", "ground_truth": "  "},
    ]
    ann = write_jsonl(tmp_path / "region_captioning.jsonl", lines)
    with pytest.raises(DataFormatError, match=r"line 2: ground_truth is empty"):
        read_references("geochat-region-caption", ann)
    refs = read_references("geochat-region-caption", ann, skip_bad=True)
    assert refs.records == [{"sample_id": "11", "image": "P0003_0004.png", "references": ["a large white vehicle"]}]
    ann = write_jsonl(tmp_path / "referring.jsonl", geochat_referring_lines())
    with pytest.raises(DataFormatError, match="looks like referring.jsonl; use geochat-referring"):
        read_references("geochat-region-caption", ann)


# ---- writing and the command ----------------------------------------------------------------------------------------
def test_write_references_never_overwrites_without_force(tmp_path):
    out = tmp_path / "refs.json"
    out.write_text("keep me")
    with pytest.raises(FileExistsError, match="pass --force"):
        write_references([{"sample_id": "1", "references": ["x"]}], out)
    assert out.read_text() == "keep me"
    write_references([{"sample_id": "1", "references": ["x"]}], out, force=True)
    assert json.loads(out.read_text()) == [{"sample_id": "1", "references": ["x"]}]
    assert [p.name for p in tmp_path.iterdir()] == ["refs.json"]


def test_data_main_refs_end_to_end(tmp_path, capsys):
    write_image(tmp_path / "Images_val" / "P0003_0002.png", 200, 100)
    ann = write_json(tmp_path / "VRSBench_EVAL_referring.json", vrsbench_referring())
    out = tmp_path / "refs.json"
    args = ["refs", "vrsbench-referring", str(ann), "--images", str(tmp_path / "Images_val"), "--out", str(out)]
    assert data_main(args) == 0
    line = capsys.readouterr().out.strip()
    assert line == f"rsvlm data refs: wrote 2 grounding reference(s) to {out} (for rsvlm eval --task grounding)"
    assert [r["box"] for r in json.loads(out.read_text())] == [[50.0, 40.0, 66.0, 60.0], [160.0, 0.0, 200.0, 20.0]]
    # existing --out: refused, file untouched; --force overwrites
    before = out.read_text()
    assert data_main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("rsvlm data refs: error: ") and "pass --force" in err and err.count("\n") == 1
    assert out.read_text() == before
    assert data_main([*args, "--force"]) == 0
    capsys.readouterr()
    # bad arguments exit 2; a bad record exits 1 with one line naming file and record
    assert data_main(["refs", "vrsbench-referring", str(ann), "--out", str(tmp_path / "x.json")]) == 2
    assert "needs --images DIR" in capsys.readouterr().err
    assert data_main(["refs", "geochat-referring", str(ann), "--split", "test", "--images", str(tmp_path)]) == 2
    assert "has no splits" in capsys.readouterr().err
    assert data_main(["refs", "no-such-format", str(ann)]) == 2
    capsys.readouterr()
    bad = vrsbench_referring()
    bad[0]["ground_truth"] = "the vehicle"
    write_json(ann, bad)
    assert data_main([*args[:-1], str(tmp_path / "y.json")]) == 1
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "VRSBench_EVAL_referring.json: record 0: ground_truth 'the vehicle' holds no box" in err
    )
    assert not (tmp_path / "y.json").exists()


def test_real_dior_rsvg_sample(real_data, tmp_path):
    out = tmp_path / "refs.json"
    assert data_main(["refs", "dior-rsvg", str(real_data / "regions/dior_rsvg"), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == [
        {
            "sample_id": "0",
            "image": "00001.jpg",
            "width": 800,
            "height": 800,
            "box": [133.0, 237.0, 684.0, 672.0],
            "expression": "A green and brown golf field",
        }
    ]
