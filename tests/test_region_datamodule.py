import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from rsvlm_zoo.datamodules import AnnotationSource, RegionDataModule, SyntheticSource


def write_osprey(tmp_path):
    """Two scenes in Osprey's region-conversation format: one polygon region, one compressed-RLE region."""
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(rng.integers(0, 255, (90, 70, 3), dtype=np.uint8)).save(tmp_path / "images" / "b.jpg")
    m = np.zeros((90, 70), np.uint8, order="F")
    m[10:30, 5:25] = 1
    rle = mask_utils.encode(m)
    rle["counts"] = rle["counts"].decode("ascii")
    records = [
        {
            "file_name": "a.png",
            "height": 60,
            "width": 80,
            "annotation": [{"segmentation": [[10, 10, 40, 10, 40, 30, 10, 30]], "bbox": [10, 10, 30, 20]}],
            "conversations": [
                {"from": "human", "value": "<image>\nThis provides an overview of the picture.\nWhat is <mask><pos>?"},
                {"from": "gpt", "value": "a red car"},
            ],
        },
        {
            "file_name": "b.jpg",
            "height": 90,
            "width": 70,
            "annotation": [{"segmentation": rle, "bbox": [5, 10, 20, 20]}],
            "conversations": [
                {"from": "human", "value": "<image>\nPlease give me a short description of <mask><pos>."},
                {"from": "gpt", "value": "a white building"},
            ],
        },
    ]
    path = tmp_path / "osprey.json"
    path.write_text(json.dumps(records))
    return path


def test_osprey_json_trains_the_tiny_model(tmp_path, tiny_aquila):
    path = write_osprey(tmp_path)
    dm = RegionDataModule(train=AnnotationSource("osprey", str(path), str(tmp_path / "images")), batch_size=2)
    dm.attach(tiny_aquila.input_spec())
    batch = next(iter(dm.train_dataloader()))
    assert batch["region_masks"].shape == (2, 128, 128)
    assert batch["skipped"] == 0
    # Each region's mask keeps its share of the (squashed) image.
    areas = sorted(batch["region_masks"].sum((1, 2)).tolist())
    assert areas[0] == pytest.approx(400 * (128 / 70) * (128 / 90), rel=0.05)
    assert areas[1] == pytest.approx(600 * (128 / 80) * (128 / 60), rel=0.05)
    loss = tiny_aquila(batch)
    assert torch.isfinite(loss)


def test_bad_samples_are_skipped_and_counted_when_asked(tmp_path, tiny_aquila):
    path = write_osprey(tmp_path)
    records = json.loads(path.read_text())
    records[1]["conversations"][0]["value"] += " And <mask><pos>?"  # two placeholders, one region
    path.write_text(json.dumps(records))
    source = AnnotationSource("osprey", str(path), str(tmp_path / "images"), options={"check_tokens": False})
    dm = RegionDataModule(train=source, batch_size=2, on_bad_sample="skip")
    dm.attach(tiny_aquila.input_spec())
    batch = next(iter(dm.train_dataloader()))
    assert batch["skipped"] == 1 and batch["input_ids"].shape[0] == 1
    strict = RegionDataModule(train=source, batch_size=2)
    strict.attach(tiny_aquila.input_spec())
    with pytest.raises(Exception, match="placeholders"):
        next(iter(strict.train_dataloader()))


def test_eval_loaders_include_the_shuffled_mask_control(tiny_aquila):
    dm = RegionDataModule(
        val=SyntheticSource(3, seed=1, one_question_per_sample=True), eval_batch_size=64, mask_control=True
    )
    dm.attach(tiny_aquila.input_spec())
    normal, control = (next(iter(loader)) for loader in dm.val_dataloader())
    assert normal["answers"] == control["answers"]
    assert normal["meta"][0]["eval_name"] == "regions" and control["meta"][0]["eval_name"] == "shuffled_masks"
    assert not torch.equal(normal["region_masks"], control["region_masks"])
    assert torch.equal(normal["input_ids"], control["input_ids"])


def test_the_box_control_gives_each_question_another_objects_box():
    """MGIMM's stage-1 control: the same question and answer, the box of another object of the same scene."""
    source = SyntheticSource(20, seed=1, task="box_attributes")
    control = source.control()
    assert len(control) == len(source)
    samples = [source[i] for i in range(len(source))]
    scene_boxes: dict[str, set] = {}
    for sample in samples:
        scene_boxes.setdefault(sample.sample_id.split(":")[0], set()).add(tuple(sample.regions[0].box))
    for i, own in enumerate(samples):
        other = control[i]
        assert own.conversation == other.conversation and own.meta == other.meta
        assert own.regions[0].box != other.regions[0].box
        assert tuple(other.regions[0].box) in scene_boxes[own.sample_id.split(":")[0]]  # one of the scene's objects


def test_no_val_source_means_no_validation_as_in_lightning():
    dm = RegionDataModule(train=SyntheticSource(2, seed=0))
    assert dm.val_dataloader() == []
    with pytest.raises(ValueError, match="no test source; set data.init_args.test"):
        dm.test_dataloader()
