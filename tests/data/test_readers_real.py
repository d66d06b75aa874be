"""Readers on the real sample files in <project root>/../shared/data (skipped when absent)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from rsvlm_zoo.data.readers import READERS, read_annotations
from rsvlm_zoo.data.schema import DataFormatError, Sample


def test_isaid_uncompressed_rle(real_data):
    samples = read_annotations("coco", real_data / "regions/isaid/instances.json")
    assert len(samples) == 2
    regions = [r for s in samples for r in s.regions]
    assert len(regions) == 190
    assert all(isinstance(r.rle["counts"], list) and r.polygons is None for r in regions)
    first = samples[0]
    assert first.image.name == "P0005.png" and first.image.is_file()
    assert (first.width, first.height) == (884, 977)
    assert first.regions[0].box == (97.0, 223.0, 180.0, 246.0)  # xywh [97, 223, 83, 23] -> xyxy
    assert {r.category for r in regions} <= {"Large_Vehicle", "Small_Vehicle", "storage_tank"}
    assert Counter(s.split for s in samples) == {"train": 1, "val": 1}
    assert len(read_annotations("coco", real_data / "regions/isaid/instances.json", split="val")) == 1
    # the RLE really describes the box region (decoded here only to check the reader kept it intact)
    mask = first.regions[0].to_mask(first.height, first.width)
    rows, cols = np.nonzero(mask)
    assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (97, 223, 180, 246)


def test_nwpu_vhr10_polygons(real_data):
    samples = read_annotations("coco", real_data / "regions/nwpu_vhr10/annotations.json")
    regions = [r for s in samples for r in s.regions]
    assert len(samples) == 650 and len(regions) == 3921
    assert len({r.category for r in regions}) == 10
    assert all(r.polygons and r.polygons[0].ndim == 2 and r.polygons[0].shape[1] == 2 for r in regions)
    assert (samples[0].width, samples[0].height) == (958, 808)


def test_ucm_captions(real_data):
    samples = read_annotations("karpathy", real_data / "captions/ucm/dataset.json")
    assert len(samples) == 2100
    assert sum(len(s.captions) for s in samples) == 10500
    assert Counter(s.split for s in samples) == {"train": 1680, "val": 210, "test": 210}
    assert samples[0].captions[0] == "There is a piece of farmland ."
    assert samples[0].image.name == "1.tif" and (samples[0].width, samples[0].height) == (256, 256)
    assert len(read_annotations("karpathy", real_data / "captions/ucm/dataset.json", split="test")) == 210


def test_ucm_unknown_split_lists_splits(real_data):
    with pytest.raises(DataFormatError, match=r"no split 'validation'.*test \(210\).*train \(1680\)"):
        read_annotations("karpathy", real_data / "captions/ucm/dataset.json", split="validation")


def test_sydney_captions(real_data):
    samples = read_annotations("karpathy", real_data / "captions/sydney/dataset.json")
    assert len(samples) == 613 and sum(len(s.captions) for s in samples) == 3065
    assert Counter(s.split for s in samples) == {"train": 497, "val": 58, "test": 58}


def test_rsicd_keeps_typos(real_data):
    samples = read_annotations("karpathy", real_data / "captions/rsicd/dataset_rsicd.json")
    assert len(samples) == 8
    assert samples[0].captions[0] == "a football field with several buildiings surroudned ."
    assert all(len(s.captions) == 5 for s in samples)
    assert (samples[0].width, samples[0].height) == (224, 224)


def test_dota_oriented_objects(real_data):
    for annotation in (real_data / "regions/dota/labelTxt", real_data / "regions/dota/labelTxt/P1888.txt"):
        (sample,) = read_annotations("dota", annotation)
        assert sample.image == real_data / "regions/dota/images/P1888.png"
        assert len(sample.regions) == 64
        assert sample.meta == {"imagesource": "GoogleEarth", "gsd": "0.266170468393"}
        r = sample.regions[0]
        assert r.polygons[0].shape == (4, 2) and r.box == (674.0, 375.0, 684.0, 395.0)
        assert r.category == "small-vehicle" and r.attributes["difficult"] is False
        assert (sample.width, sample.height) == (712, 557)


def test_deepforest_csv_and_xml_agree(real_data):
    (from_csv,) = read_annotations("csv", real_data / "regions/deepforest/OSBS_029.csv")
    (from_xml,) = read_annotations("voc", real_data / "regions/deepforest/OSBS_029.xml")
    assert len(from_csv.regions) == len(from_xml.regions) == 61
    assert [r.box for r in from_csv.regions] == [r.box for r in from_xml.regions]
    assert {r.category for r in from_csv.regions} == {"Tree"}
    # both name OSBS_029.tif; the file on disk is the PNG with the same stem
    assert from_csv.image.name == from_xml.image.name == "OSBS_029.png"
    assert (from_xml.width, from_xml.height) == (from_csv.width, from_csv.height) == (400, 400)


def test_dior_rsvg_one_object(real_data):
    (sample,) = read_annotations("dior-rsvg", real_data / "regions/dior_rsvg")
    (region,) = sample.regions
    assert region.text == "A green and brown golf field" and region.category == "golffield"
    assert region.box == (133.0, 237.0, 684.0, 672.0)
    assert sample.image.name == "00001.jpg" and (sample.width, sample.height) == (800, 800)


def test_every_sample_is_a_sample(real_data):
    samples = read_annotations("karpathy", real_data / "captions/rsicd/dataset_rsicd.json")
    assert all(isinstance(s, Sample) for s in samples)
    assert samples.report.skipped == 0 and samples.report.read == 8
    assert set(READERS) >= {
        "karpathy",
        "nwpu",
        "coco",
        "dota",
        "voc",
        "csv",
        "osprey",
        "mgimm-region",
        "mgimm-description",
        "dior-rsvg",
        "llava",
    }
