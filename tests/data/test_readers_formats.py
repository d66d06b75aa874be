"""Readers on small files written per format, including the bad-input catalogue."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from rsdata_helpers import write_image, write_json

from rsvlm_zoo.data.readers import read_annotations
from rsvlm_zoo.data.schema import DataFormatError


def coco_doc(**over):
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        "annotations": [
            {
                "id": 10,
                "image_id": 1,
                "category_id": 3,
                "bbox": [2, 3, 10, 5],
                "segmentation": [[2, 3, 12, 3, 12, 8, 2, 8]],
                "iscrowd": 0,
            },
        ],
        "categories": [{"id": 3, "name": 7}],  # numeric category name
    }
    doc.update(over)
    return doc


# ---- COCO -----------------------------------------------------------------------------------------
def test_coco_polygon_box_and_numeric_category(tmp_path):
    (s,) = read_annotations("coco", write_json(tmp_path / "i.json", coco_doc()))
    (r,) = s.regions
    assert r.box == (2.0, 3.0, 12.0, 8.0) and r.category == "7"
    assert r.polygons[0].shape == (4, 2) and r.attributes["iscrowd"] is False
    assert (s.width, s.height) == (64, 48)


def test_coco_flat_polygon_quirk(tmp_path):
    doc = coco_doc()
    doc["annotations"][0]["segmentation"] = [2, 3, 12, 3, 12, 8, 2, 8]
    (s,) = read_annotations("coco", write_json(tmp_path / "i.json", doc))
    assert len(s.regions[0].polygons) == 1 and s.regions[0].polygons[0].shape == (4, 2)


def test_coco_rle_compressed_and_uncompressed_and_crowd(tmp_path):
    from pycocotools import mask as mask_utils

    m = np.zeros((48, 64), np.uint8, order="F")
    m[5:10, 6:20] = 1
    compressed = mask_utils.encode(m)
    compressed["counts"] = compressed["counts"].decode("ascii")
    flat = m.flatten(order="F")
    runs, value, n = [], 0, 0
    for v in flat:
        if v != value:
            runs.append(n)
            value, n = v, 0
        n += 1
    runs.append(n)
    doc = coco_doc(
        annotations=[
            {
                "id": 1,
                "image_id": 1,
                "category_id": 3,
                "bbox": [6, 5, 14, 5],
                "segmentation": compressed,
                "iscrowd": 1,
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 3,
                "bbox": [6, 5, 14, 5],
                "segmentation": {"size": [48, 64], "counts": runs},
            },
        ]
    )
    path = write_json(tmp_path / "i.json", doc)
    (s,) = read_annotations("coco", path)
    crowd, plain = s.regions
    assert crowd.attributes["iscrowd"] is True and plain.attributes["iscrowd"] is False
    assert crowd.rle["counts"] == compressed["counts"] and plain.rle["counts"] == runs
    assert (crowd.to_mask(48, 64) == plain.to_mask(48, 64)).all()
    (dropped,) = read_annotations("coco", path, drop_crowd=True)
    assert len(dropped.regions) == 1


def test_coco_duplicate_image_ids(tmp_path):
    doc = coco_doc()
    doc["images"].append({"id": 1, "file_name": "b.jpg", "width": 64, "height": 48})
    with pytest.raises(DataFormatError, match=r"i.json: images\[1\] id=1: image id 1 repeats images\[0\]"):
        read_annotations("coco", write_json(tmp_path / "i.json", doc))


def test_coco_polygon_too_few_points(tmp_path):
    doc = coco_doc()
    doc["annotations"][0]["segmentation"] = [[2, 3, 12, 3]]
    with pytest.raises(DataFormatError, match=r"annotations\[0\] id=10: .*2 point\(s\); a polygon needs at least 3"):
        read_annotations("coco", write_json(tmp_path / "i.json", doc))


def test_coco_box_outside_image(tmp_path):
    doc = coco_doc()
    doc["annotations"][0]["bbox"] = [100, 100, 10, 10]
    doc["annotations"][0].pop("segmentation")
    with pytest.raises(DataFormatError, match="outside the 64x48 image"):
        read_annotations("coco", write_json(tmp_path / "i.json", doc))


def test_skip_bad_records_counts_and_warns(tmp_path, caplog):
    doc = coco_doc()
    doc["annotations"].append({"id": 11, "image_id": 1, "category_id": 3, "segmentation": [[1, 1, 2, 2]]})
    doc["annotations"].append({"id": 12, "image_id": 99, "category_id": 3, "bbox": [1, 1, 2, 2]})
    with caplog.at_level(logging.WARNING):
        samples = read_annotations("coco", write_json(tmp_path / "i.json", doc), on_bad_record="skip")
    assert len(samples[0].regions) == 1
    assert samples.report.skipped == 2 and "image_id 99" in samples.report.reasons[1]
    assert "skipped 2 bad record(s)" in caplog.text


def test_malformed_json_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"images": [\n  {"id": 1,}\n]}')
    with pytest.raises(DataFormatError, match=r"bad.json: invalid JSON at line 2 column 12"):
        read_annotations("coco", path)


def test_unknown_format_lists_names(tmp_path):
    with pytest.raises(ValueError, match=r"unknown annotation format 'yolo'.*karpathy.*llava"):
        read_annotations("yolo", tmp_path / "x")


# ---- captions -------------------------------------------------------------------------------------
def karpathy_doc():
    return {
        "images": [
            {
                "filename": f"{k}.jpg",
                "imgid": k,
                "split": split,
                "sentids": [k],
                "sentences": [{"tokens": ["a"], "raw": f"caption {k} .", "imgid": k, "sentid": k}],
            }
            for k, split in enumerate(["train", "train", "test"])
        ],
        "dataset": "x",
    }


def test_karpathy_small_and_unknown_split(tmp_path):
    path = write_json(tmp_path / "dataset.json", karpathy_doc())
    assert [s.captions for s in read_annotations("karpathy", path, split="test")] == [["caption 2 ."]]
    with pytest.raises(DataFormatError, match=r"no split 'val'; the file has splits: test \(1\), train \(2\)"):
        read_annotations("karpathy", path, split="val")


def test_karpathy_duplicate_imgid(tmp_path):
    doc = karpathy_doc()
    doc["images"][1]["imgid"] = 0
    with pytest.raises(DataFormatError, match="imgid 0 repeats"):
        read_annotations("karpathy", write_json(tmp_path / "d.json", doc))


def test_non_utf8_caption(tmp_path):
    path = tmp_path / "d.json"
    text = json.dumps(karpathy_doc()).replace("caption 1", "caf\u00e9 1")
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"byte 0xe9 at line 1 column \d+ is not UTF-8"):
        read_annotations("karpathy", path)
    samples = read_annotations("karpathy", path, encoding_errors="replace")
    assert samples[1].captions == ["caf\ufffd 1 ."]


def test_nwpu_captions(tmp_path):
    doc = {
        "airport": [
            {
                "filename": "airport_001.jpg",
                "split": "train",
                "imgid": 0,
                "raw": "a",
                "raw_1": "b",
                "raw_2": "c",
                "raw_3": "d",
                "raw_4": "e",
                "sentids": 0,
            }
        ]
    }
    (s,) = read_annotations("nwpu", write_json(tmp_path / "dataset_nwpu.json", doc), images=tmp_path)
    assert s.captions == ["a", "b", "c", "d", "e"] and s.image == tmp_path / "airport" / "airport_001.jpg"
    assert s.meta["class"] == "airport"


# ---- DOTA / VOC / CSV / DIOR-RSVG -----------------------------------------------------------------
def test_dota_small_file_and_bad_line(tmp_path):
    (tmp_path / "labelTxt").mkdir()
    write_image(tmp_path / "images" / "P1.jpg")
    (tmp_path / "labelTxt" / "P1.txt").write_text("gsd:null\n1 1 10 1 10 8 1 8 plane 1\n1 2 3 plane\n")
    with pytest.raises(DataFormatError, match=r"P1.txt line 3: .*has 4 fields"):
        read_annotations("dota", tmp_path / "labelTxt")
    (s,) = read_annotations("dota", tmp_path / "labelTxt", on_bad_record="skip")
    assert s.image == tmp_path / "images" / "P1.jpg" and (s.width, s.height) == (64, 48)
    assert s.regions[0].attributes["difficult"] is True and s.regions[0].box == (1.0, 1.0, 10.0, 8.0)


def test_voc_and_csv_small(tmp_path):
    (tmp_path / "x.xml").write_text(
        "<annotation><filename>x.png</filename><size><width>64</width><height>48</height></size>"
        "<object><name>car</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax>"
        "<ymax>40</ymax></bndbox></object></annotation>"
    )
    (s,) = read_annotations("voc", tmp_path / "x.xml")
    assert s.regions[0].box == (1.0, 2.0, 30.0, 40.0) and s.regions[0].attributes["difficult"] is True
    (tmp_path / "b.csv").write_text("image_path,xmin,ymin,xmax,ymax,label\nx.png,1,2,30,40,car\ne.png,0,0,0,0,Tree\n")
    a, empty = read_annotations("csv", tmp_path / "b.csv")
    assert a.regions[0].box == s.regions[0].box and empty.regions == []
    (tmp_path / "c.csv").write_text("path,x,y\n")
    with pytest.raises(DataFormatError, match="lacks column"):
        read_annotations("csv", tmp_path / "c.csv")


def test_voc_malformed_xml(tmp_path):
    (tmp_path / "x.xml").write_text("<annotation>\n<object>\n</annotation>")
    with pytest.raises(DataFormatError, match=r"x.xml: invalid XML at line 3"):
        read_annotations("voc", tmp_path / "x.xml")


def dior_root(tmp_path, n_files=2):
    ann = tmp_path / "Annotations"
    ann.mkdir()
    for f in range(n_files):
        objs = "".join(
            f"<object><name>c{f}{k}</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>"
            f"<description>thing {f}{k}</description></object>"
            for k in range(2)
        )
        (ann / f"{f + 1:05d}.xml").write_text(
            f"<annotation><filename>{f + 1:05d}.jpg</filename>"
            "<size><width>20</width><height>20</height></size>"
            f"{objs}</annotation>"
        )
    return tmp_path


def test_dior_rsvg_split_indices_are_object_indices(tmp_path):
    root = dior_root(tmp_path)
    (root / "test.txt").write_text("3\n0\n")
    assert len(read_annotations("dior-rsvg", root)) == 4
    samples = read_annotations("dior-rsvg", root, split="test")
    assert [s.regions[0].text for s in samples] == ["thing 11", "thing 00"]
    assert samples[0].image.name == "00002.jpg" and samples[0].split == "test"
    (root / "val.txt").write_text("4\n")
    with pytest.raises(DataFormatError, match="object index 4 but only 4 objects"):
        read_annotations("dior-rsvg", root, split="val")
    with pytest.raises(DataFormatError, match=r"no split file train.txt; split files present: \['test', 'val'\]"):
        read_annotations("dior-rsvg", root, split="train")
